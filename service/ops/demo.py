"""A year of realistic demo data so a newcomer's first run shows a populated panel:
leads with activity, promotions, decisions (some late), nurture, outbound SQLs, customers."""

from __future__ import annotations

import random
import re
import secrets
from datetime import datetime, timedelta

import peewee

from service import lifecycle
from service.accounts.users import create_user
from service.content.reasons import reject_reasons
from service.core.db import transaction, utcnow
from service.core.errors import InvalidInput
from service.core.models import Definition, Enrollment, Handoff, Lead, Rep, Team, User
from service.core.settings import Settings
from service.handoffs import sla
from service.intake.activity import record_events
from service.intake.event import Event
from service.leads.definitions import add_definition
from service.leads.scoring import Policy
from service.nurture import sequences as nurture
from service.reports import rollups

FIRST = ["Ada", "Grace", "Linus", "Margaret", "Tim", "Katherine", "Alan", "Barbara", "Edsger",
         "Radia", "Ken", "Frances", "Donald", "Hedy", "Dennis", "Sophie", "John", "Mary",
         "Guido", "Anita", "Bjarne", "Shafi", "Leslie", "Adele", "Niklaus", "Jean", "Vint"]
LAST = ["Lovelace", "Hopper", "Torvalds", "Hamilton", "Berners-Lee", "Johnson", "Kay",
        "Liskov", "Dijkstra", "Perlman", "Thompson", "Allen", "Knuth", "Lamarr", "Ritchie",
        "Wilson", "McCarthy", "Keller", "van Rossum", "Borg", "Stroustrup", "Goldwasser",
        "Lamport", "Goldberg", "Wirth", "Sammet", "Cerf"]
COMPANIES = ["Analytical Engines", "Compiler Works", "Kernel Co", "Apollo Software",
             "Orbital Analytics", "Dynabook", "Substitution Systems", "Shortest Path",
             "Spanning Tree Networks", "Unix Labs", "Typeset Press", "Frequency Hop",
             "Tiny Basic", "Byte Foundry", "Lambda Logistics", "Paxos Payments",
             "Turing Freight", "Quantum Quarry", "Relay Retail", "Sorting Hat Media"]
COUNTRIES = ["GB", "GB", "DE", "NL", "FR", "US", "US", "US", "CA", "IE", "SE"]
SIZES = ["1-10", "11-50", "51-200", "201-1000", "1000-5000", "5000+"]
SOURCES = ["form:contact", "form:contact", "webhook:website", "tracking:website", "import"]
ACTIVITY = ["page_view", "page_view", "page_view", "pricing_page_view", "content_download",
            "webinar_registered", "webinar_attended", "demo_video_watched", "email_click",
            "contact_sales", "trial_signup"]
DEMO_DOMAIN = "leadbridge-demo.example"  # .example is reserved (RFC 2606): no mail goes there
REPS = [(f"riley@{DEMO_DOMAIN}", "Riley Rep", "Europe/London", "EMEA", 2),
        (f"jordan@{DEMO_DOMAIN}", "Jordan Rep", "America/New_York", "Americas", 2),
        (f"sasha@{DEMO_DOMAIN}", "Sasha Rep", "Europe/Berlin", "EMEA", 1),
        (f"morgan@{DEMO_DOMAIN}", "Morgan Rep", "America/Chicago", "Americas", 1)]
MANAGERS = {"EMEA": f"sam@{DEMO_DOMAIN}", "Americas": f"alex@{DEMO_DOMAIN}"}
MARKETERS = [f"mia@{DEMO_DOMAIN}", f"noah@{DEMO_DOMAIN}"]


def load_demo(settings: Settings, *, seed: int = 7, days: int = 365, per_day: float = 9.0) -> str:
    """Fill an empty database with a year of activity; refuses a database that has leads.
    Every person it makes up has an address under .example, which the outbox never mails,
    and the marketers and managers get panel logins, returned once with the summary."""
    if Lead.select().exists():
        raise InvalidInput("demo data goes into an empty database, and this one has leads: "
                           "stop leadbridge and move the data folder aside (or point data_dir "
                           "at another folder), then run it again")
    rng, now = random.Random(seed), utcnow().replace(microsecond=0)
    _people(now - timedelta(days=days + 30))
    logins = _logins(now)
    policy = Policy.from_settings(settings)
    reps = list(Rep.select())
    leads = outbound = 0
    for offset in range(days, -1, -1):
        day = now - timedelta(days=offset)
        growth = 0.7 + 0.6 * (days - offset) / days
        weekday = 0.45 if day.weekday() >= 5 else 1.0
        for _ in range(_poisson(rng, per_day * growth * weekday)):
            leads += 1
            _lead(rng, settings, policy, reps, day, now, leads)
        if rng.random() < 0.18:
            outbound += _outbound(rng, reps, day, leads)
    _resume_sequences(now)
    rollups.refresh(now)
    summary = (f"demo data loaded: {leads} leads over {days} days, {len(reps)} reps in 2 teams, "
               f"{outbound} outbound SQLs")
    if not logins:
        return summary
    return "\n".join([summary, "Demo logins (shown once):",
                      *(f"  {email} / {password}  ({role})" for email, password, role in logins)])


def slug(text: str) -> str:
    """Lower-case letters and digits, any other run as one hyphen: 'van Rossum' → 'van-rossum'."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _poisson(rng: random.Random, mean: float) -> int:
    count, limit, product = 0, 2.718281828 ** -mean, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


def _people(start: datetime) -> None:
    with transaction():
        for name, manager in MANAGERS.items():
            Team.get_or_create(name=name, defaults={"manager_email": manager})
        for email, name, zone, team, weight in REPS:
            Rep.get_or_create(email=email, defaults={
                "name": name, "time_zone": zone, "weight": weight,
                "team": Team.get(Team.name == team)})
    if not Definition.select().exists():
        add_definition("mql", agreed_by_marketing="Mia Marketing", agreed_by_sales="Sam Manager",
                       agreed_at=start, text="Asked for contact, or two high-intent actions "
                       "(pricing, demo video, webinar) within 30 days.")
        add_definition("sql", agreed_by_marketing="Mia Marketing", agreed_by_sales="Sam Manager",
                       agreed_at=start, text="A rep confirmed need and a buying timeline under "
                       "12 months with someone who influences the decision.")
        add_definition("mql", agreed_by_marketing="Mia Marketing", agreed_by_sales="Alex Manager",
                       agreed_at=start + timedelta(days=240), text="Asked for contact, or two "
                       "high-intent actions within 30 days, at a company of 50+ people.")


def _logins(now: datetime) -> list[tuple[str, str, str]]:
    """Panel users for the demo's marketers and managers, with generated passwords; (email,
    password, role) for each made now (one that exists already keeps its password)."""
    people = [(email, "marketer") for email in MARKETERS]
    people += [(email, "sales_manager") for email in MANAGERS.values()]
    made = []
    for email, role in people:
        if User.select().where(User.email == email).exists():
            continue
        password = secrets.token_urlsafe(12)
        create_user(email, role=role, password=password, now=now)
        made.append((email, password, role))
    return made


def _lead(rng, settings, policy, reps, day: datetime, now: datetime, n: int) -> None:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    company = rng.choice(COMPANIES)
    created = day.replace(hour=rng.randint(7, 20), minute=rng.randint(0, 59))
    if created > now:
        created = now - timedelta(minutes=rng.randint(1, 120))
    email = f"{slug(first)}.{slug(last)}.{n}@{slug(company)}.example"
    fields = {"first_name": first, "last_name": last, "company": company,
              "country": rng.choice(COUNTRIES), "company_size": rng.choice(SIZES),
              "title": rng.choice(["CTO", "Head of Sales Ops", "VP Marketing", "Engineer",
                                   "Founder", "Procurement Lead"])}
    times = sorted(created + timedelta(hours=rng.uniform(0, 24 * 20))
                   for _ in range(rng.randint(1, 7)))
    events = [Event(type="form_submit" if i == 0 else rng.choice(ACTIVITY),
                    occurred_at=min(at, now), email=email, fields=fields if i == 0 else {})
              for i, at in enumerate(times)]
    record_events(events, source=rng.choice(SOURCES), now=created, policy=policy)
    lead = Lead.get(Lead.email == email)
    if rng.random() < 0.2:
        _handoff(rng, settings, lead, reps, created, now)


def _handoff(rng, settings, lead: Lead, reps, created: datetime, now: datetime) -> None:
    promoted = created + timedelta(hours=rng.uniform(2, 24 * 12))
    if promoted >= now:
        return
    rep = rng.choice(reps)
    schedule = sla.schedule(promoted, sla.policy_for(settings, rep.team.name))
    handoff = lifecycle.promote(lead.id, rep_id=rep.id, actor=rng.choice(MARKETERS),
                                note=rng.choice(["", "Asked about pricing for 40 seats.",
                                                 "Attended two webinars.", ""]),
                                now=promoted, schedule=schedule)
    late = rng.random() < 0.22
    decided = (schedule.due_at + timedelta(hours=rng.uniform(1, 40)) if late
               else promoted + (schedule.due_at - promoted) * rng.uniform(0.05, 0.95))
    if decided >= now or (now - promoted < timedelta(days=4) and rng.random() < 0.5):
        return  # still waiting for the rep
    if late:
        Handoff.update(escalated_at=schedule.due_at, reminded_at=schedule.remind_at).where(
            Handoff.id == handoff.id).execute()
    if rng.random() < 0.55:
        lifecycle.accept(handoff.id, now=decided, actor=rep.email, notes="", requires=[],
                         bant={"budget": rng.choice(["confirmed", "likely", "unknown"]),
                               "authority": rng.choice(["decision_maker", "influencer"]),
                               "need": rng.choice(["clear", "emerging"]),
                               "timeline": rng.choice(["lt_3m", "3_6m", "6_12m"])})
        won = decided + timedelta(days=rng.uniform(10, 80))
        if rng.random() < 0.3 and won < now:
            lifecycle.win(lead.id, actor=MANAGERS[rep.team.name], now=won)
        return
    reasons = reject_reasons()
    reason = rng.choice(list(reasons))
    outcome = reasons[reason]["outcome"]
    lifecycle.reject(handoff.id, reason=reason, outcome=outcome, notes="", actor=rep.email,
                     now=decided)
    if outcome.startswith("nurture:"):
        nurture.enroll(lead.id, outcome.partition(":")[2], settings=settings, now=decided)


def _outbound(rng, reps, day: datetime, n: int) -> int:
    company = rng.choice(COMPANIES)
    email = f"outbound.{n}.{rng.randint(1, 10**6)}@{slug(company)}.example"
    try:
        lifecycle.register_outbound(
            email, fields={"company": company}, rep_id=rng.choice(reps).id,
            notes="Met at a trade show.", actor=MANAGERS["EMEA"],
            now=day.replace(hour=15), bant={"budget": "likely", "authority": "decision_maker",
                                            "need": "clear", "timeline": "3_6m"})
    except peewee.IntegrityError:
        return 0
    return 1


def _resume_sequences(now: datetime) -> None:
    """Sequences resume from today rather than sending a year of steps at once."""
    with transaction():
        Enrollment.update(next_due_at=now + timedelta(days=1)).where(
            Enrollment.status == lifecycle.EnrollmentStatus.ACTIVE,
            Enrollment.next_due_at < now).execute()
