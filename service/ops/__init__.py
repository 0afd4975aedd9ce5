"""Running Leadbridge: the command line, `leadbridge up`, the web server, migrations, demo data."""
