# parser: CSV or JSON text to records.  inputs: text | path, format; result: {"records": [...]}
import csv
import io
import json

text = inputs.get("text")
if text is None and inputs.get("path"):
    with open(inputs["path"], encoding="utf-8") as source:  # the guard decides, with the caller's rights
        text = source.read()
text = text or ""
kind = inputs.get("format") or ("json" if text.lstrip()[:1] in ("[", "{") else "csv")
if kind == "json":
    data = json.loads(text)
    records = data if isinstance(data, list) else [data]
else:
    records = [dict(row) for row in csv.DictReader(io.StringIO(text))]
result = {"records": records, "count": len(records)}
