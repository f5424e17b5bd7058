# wordcount: inputs: text | records, top; result: {"words": n, "top": [[word, count], ...]}
import re
from collections import Counter

parts = [inputs.get("text") or ""]
for record in inputs.get("records") or []:
    values = record.values() if isinstance(record, dict) else [record]
    parts.extend(v for v in values if isinstance(v, str))
words = re.findall(r"[\w']+", " ".join(parts).lower())
counts = Counter(words)
result = {"words": len(words), "top": [list(p) for p in counts.most_common(int(inputs.get("top", 5)))]}
