"""Activity coming in: events from every source, recording them in batches, CSV import,
integration keys, counters of what intake drops."""
