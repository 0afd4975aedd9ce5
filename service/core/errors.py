"""Domain errors. The web layer maps each to an HTTP status in one handler."""


class DomainError(Exception):
    status = 400
    code = "invalid"

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class InvalidInput(DomainError):
    status = 400
    code = "invalid"


class NotFound(DomainError):
    status = 404
    code = "not_found"


class IllegalTransition(DomainError):
    status = 409
    code = "illegal_transition"


class AlreadyDecided(DomainError):
    status = 409
    code = "already_decided"
