"""Realistic demo data so a newcomer sees a working panel."""

from __future__ import annotations

import random
from datetime import timedelta

import peewee

from .db import transaction, utcnow
from .intake import record_activity
from .models import Definition, Rep, Team

PEOPLE = [
    ("Ada", "Lovelace", "Analytical Engines Ltd", "CTO", "GB"),
    ("Grace", "Hopper", "Compiler Works", "VP Engineering", "US"),
    ("Linus", "Torvalds", "Kernel Co", "Founder", "FI"),
    ("Margaret", "Hamilton", "Apollo Software", "Head of Reliability", "US"),
    ("Tim", "Berners-Lee", "Web Foundations", "Director", "GB"),
    ("Katherine", "Johnson", "Orbital Analytics", "Head of Data", "US"),
    ("Alan", "Kay", "Dynabook Inc", "Chief Architect", "US"),
    ("Barbara", "Liskov", "Substitution Systems", "CEO", "US"),
    ("Edsger", "Dijkstra", "Shortest Path BV", "Procurement Lead", "NL"),
    ("Radia", "Perlman", "Spanning Tree Networks", "Network Architect", "US"),
]
ACTIVITY = ["page_view", "pricing_page_view", "content_download", "webinar_registered",
            "webinar_attended", "demo_video_watched", "contact_sales"]


def load_demo(seed: int = 7) -> str:
    rng, now = random.Random(seed), utcnow()
    with transaction():
        team, _ = Team.get_or_create(name="EMEA & North America",
                                     defaults={"manager_email": "sam.manager@example.com"})
        for email, name, tz in (("riley.rep@example.com", "Riley Rep", "Europe/London"),
                                ("jordan.rep@example.com", "Jordan Rep", "America/New_York")):
            Rep.get_or_create(email=email, defaults={
                "name": name, "team": team, "time_zone": tz,
                "manager_email": team.manager_email})
        try:
            with transaction():
                Definition.create(kind="mql", version=1, agreed_by_marketing="Mia Marketing",
                                  agreed_by_sales="Sam Manager", agreed_at=now, text=(
                                      "A person at a company of 50+ employees who asked for "
                                      "contact, or attended a webinar and viewed pricing."))
        except peewee.IntegrityError:
            pass
    for first, last, company, title, country in PEOPLE:
        email = f"{first}.{last}@{company.split()[0]}.example.com".lower()
        for _ in range(rng.randint(2, 6)):
            at = now - timedelta(hours=rng.randint(1, 24 * 30))
            record_activity(email, type=rng.choice(ACTIVITY), source="demo", occurred_at=at,
                            now=now, fields={"first_name": first, "last_name": last,
                                             "company": company, "title": title,
                                             "country": country})
    return f"demo data loaded: {len(PEOPLE)} leads, 2 reps, 1 team, MQL definition v1"
