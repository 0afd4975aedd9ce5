"""Report figures: daily and monthly rollups, the reports read from them, the weekly digest."""
