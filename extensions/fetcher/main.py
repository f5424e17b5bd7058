# fetcher: one GET through /dev/workbench/http; a denial is reported, not raised
import workbench_guest

try:
    response = workbench_guest.request("GET", inputs["url"])
    result = {"status": response.status, "content_type": response.headers.get("content-type"),
              "bytes": len(response.body), "text": response.text()[:200]}
except PermissionError as denied:
    result = {"denied": str(denied)}
