"""The baseline: a bare Flask endpoint that reads a JSON body, inserts one row into SQLite
the way Leadbridge does (WAL, synchronous=normal, one connection per thread) and answers.
With BARE_DATABASE_URL, into PostgreSQL instead (psycopg2, one connection per thread)."""

import json
import os
import sqlite3
import threading

from flask import Flask, jsonify, request

app = Flask(__name__)
PATH = os.environ.get("BARE_DB", "bare.db")
local = threading.local()
URL = os.environ.get("BARE_DATABASE_URL")


def connection():
    if not hasattr(local, "db"):
        local.db = postgresql() if URL else sqlite()
    return local.db


def sqlite() -> sqlite3.Connection:
    db = sqlite3.connect(PATH, timeout=5, isolation_level=None)
    db.execute("PRAGMA journal_mode=wal")
    db.execute("PRAGMA synchronous=normal")
    return db


def postgresql():
    import psycopg2

    return psycopg2.connect(URL)


def create_table() -> None:
    """Once, before gunicorn forks (--preload): processes racing to create the table or to
    switch SQLite to WAL could fail a first request."""
    db = postgresql() if URL else sqlite()
    key = "SERIAL PRIMARY KEY" if URL else "INTEGER PRIMARY KEY"
    db.cursor().execute(f"CREATE TABLE IF NOT EXISTS bare_event (id {key}, body TEXT)")
    db.commit()  # psycopg2 opened a transaction; sqlite3 here is in autocommit
    db.close()


create_table()


@app.post("/bare")
def bare():
    body = request.get_json(force=True)
    db = connection()
    if URL:
        with db, db.cursor() as cursor:
            cursor.execute("INSERT INTO bare_event (body) VALUES (%s)", (json.dumps(body),))
    else:
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO bare_event (body) VALUES (?)", (json.dumps(body),))
        db.execute("COMMIT")
    return jsonify(success=True)
