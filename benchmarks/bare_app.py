"""The baseline: a bare Flask endpoint that reads a JSON body and answers, nothing else."""

from flask import Flask, jsonify, request

app = Flask(__name__)


@app.post("/bare")
def bare():
    request.get_json(force=True)
    return jsonify(success=True)
