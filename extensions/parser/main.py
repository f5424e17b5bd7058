# parser: CSV or JSON text to records.  inputs: text | path | data, format; result: {"records": [...], "count": n}
import csv
import io
import json

data = inputs.get("data")
text = inputs.get("text") if data is None else (data if isinstance(data, str) else None)
if text is None and inputs.get("path"):
    with open(inputs["path"], encoding="utf-8") as source:  # the guard decides, with the caller's rights
        text = source.read()
if isinstance(data, list):  # already records (a DataFrame from %sandbox module): checked and passed on
    records = [row if isinstance(row, dict) else {"value": row} for row in data]
else:
    text = text or ""
    kind = inputs.get("format") or ("json" if text.lstrip()[:1] in ("[", "{") else "csv")
    if kind == "json":
        parsed = json.loads(text)
        records = parsed if isinstance(parsed, list) else [parsed]
    else:
        records = [dict(row) for row in csv.DictReader(io.StringIO(text))]
result = {"records": records, "count": len(records)}
