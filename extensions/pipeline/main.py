# pipeline: parser → wordcount, each called through the host (module:call), each with attenuated rights
import workbench_guest

parsed = workbench_guest.call("parser", {k: v for k, v in inputs.items() if k in ("text", "path", "format")})
counted = workbench_guest.call("wordcount", {"records": parsed["records"], "top": inputs.get("top", 3)})
result = {"records": parsed["count"], "words": counted["words"], "top": counted["top"]}
