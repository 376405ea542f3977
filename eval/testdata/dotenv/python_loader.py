"""Test oracle for eval/dotenv_loaders_test.go: python-dotenv reads dotenv files.

Reads one file path a line on stdin and answers each with one JSON line on
stdout: {"values": {...}} as dotenv_values() (what load_dotenv() sets) returns
them, or {"error": "..."} if python-dotenv cannot read the file.
"""
import json
import sys

from dotenv import dotenv_values

for line in sys.stdin:
    path = line.rstrip("\n")
    try:
        out = {"values": dotenv_values(path)}
    except Exception as e:  # an unreadable file is an answer, not a crash
        out = {"error": "%s: %s" % (type(e).__name__, e)}
    sys.stdout.write(json.dumps(out) + "\n")
    sys.stdout.flush()
