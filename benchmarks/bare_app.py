"""The baseline: a bare Flask endpoint that reads a JSON body, inserts one row into SQLite
the way Leadbridge does (WAL, synchronous=normal, one connection per thread) and answers."""

import json
import os
import sqlite3
import threading

from flask import Flask, jsonify, request

app = Flask(__name__)
PATH = os.environ.get("BARE_DB", "bare.db")
local = threading.local()


def connection() -> sqlite3.Connection:
    if not hasattr(local, "db"):
        local.db = sqlite3.connect(PATH, timeout=5, isolation_level=None)
        local.db.execute("PRAGMA journal_mode=wal")
        local.db.execute("PRAGMA synchronous=normal")
        local.db.execute("CREATE TABLE IF NOT EXISTS event (id INTEGER PRIMARY KEY, body TEXT)")
    return local.db


@app.post("/bare")
def bare():
    body = request.get_json(force=True)
    db = connection()
    db.execute("BEGIN IMMEDIATE")
    db.execute("INSERT INTO event (body) VALUES (?)", (json.dumps(body),))
    db.execute("COMMIT")
    return jsonify(success=True)
