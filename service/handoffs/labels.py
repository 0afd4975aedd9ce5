"""How BANT answers read to people."""

LABELS = {
    "confirmed": "Confirmed", "likely": "Likely", "none": "None", "unknown": "Unknown",
    "decision_maker": "Decision maker", "influencer": "Influencer", "clear": "Clear",
    "emerging": "Emerging", "lt_3m": "Under 3 months", "3_6m": "3–6 months",
    "6_12m": "6–12 months", "gt_12m": "Over 12 months", "": "—",
}
