"""Every email a person may answer carries a Reply-To that reaches a person: rep emails the
promoting marketer, emails about a rep's decision that rep, prospect emails the lead's owner
(the rep of its latest handoff) or mail.reply_to. Received over real SMTP."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine

from tests.conftest import run_worker
from tests.factories import enrolled
from tests.nurture.test_nurture import FRIDAY_EVENING, SETTINGS, nurture_mail, rejected_lead, sweep

FIRST_STEP = FRIDAY_EVENING + timedelta(days=5, hours=-9)  # Wednesday 09:00 London


def test_rep_and_marketer_emails_reply_to_each_other(make_app, rep, smtp):
    app = make_app(**SETTINGS)
    with time_machine.travel(FRIDAY_EVENING, tick=False):
        rejected_lead(app, rep)
        run_worker()
    handoff_email = next(m for m in smtp.messages if m["To"].endswith("<riley.rep@example.com>"))
    assert handoff_email["Reply-To"] == "mia@example.com"
    feedback = next(m for m in smtp.messages if m["To"] == "mia@example.com")
    assert feedback["Reply-To"] == "Riley Rep <riley.rep@example.com>"


def first_step_after_rejection(app, rep, smtp):
    """The first nurture email of a lead Riley rejected, as received."""
    with time_machine.travel(FRIDAY_EVENING, tick=False) as clock:
        rejected_lead(app, rep)
        clock.move_to(FIRST_STEP)
        sweep()
    [step] = nurture_mail(smtp)
    return step


def test_nurture_email_replies_reach_the_leads_owner(make_app, rep, smtp):
    app = make_app(**SETTINGS, **{"mail.reply_to": "hello@example.com"})
    step = first_step_after_rejection(app, rep, smtp)
    assert step["Reply-To"] == "Riley Rep <riley.rep@example.com>"


@pytest.mark.parametrize("reply_to", ["hello@example.com", ""])
def test_a_lead_without_an_owner_replies_to_mail_reply_to(make_app, smtp, reply_to):
    make_app(**SETTINGS, **{"mail.reply_to": reply_to})
    with time_machine.travel(FRIDAY_EVENING, tick=False) as clock:
        enrolled(at=FRIDAY_EVENING)
        clock.move_to(FIRST_STEP)
        sweep()
    [step] = nurture_mail(smtp)
    assert step["Reply-To"] == (reply_to or None)


def test_a_rep_name_with_a_line_break_stays_on_one_header_line(make_app, rep, smtp):
    rep.name = "Riley\r\nBcc: thief@example.com"
    rep.save()
    step = first_step_after_rejection(make_app(**SETTINGS), rep, smtp)
    assert step["Reply-To"] == '"Riley Bcc: thief@example.com" <riley.rep@example.com>'
    assert step["Bcc"] is None
