"""Writes notebooks/06-limits-and-live-gauges.ipynb (run it, then execute the notebook to store outputs)."""

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

RUN = {"tags": ["nbval-ignore-output"]}  # timings and live widgets: the cell after each checks the stable facts

cells = [
    new_markdown_cell(
        "# 06 · Limits and live gauges\n\n"
        "Every limit, hit on purpose. A run that lasts longer than a quarter of a second shows **gauges** "
        "(memory, CPU, time, and fuel when there is a budget) and a **violation timeline**: one lane per "
        "category, identical violations grouped into one band with `×N`, coloured by decision (deny amber, "
        "kill red). Hover a band for its details, click to pin them. The gauges and the timeline read one "
        "clock, so the time gauge and the axis always agree. When the run ends, the same view becomes its "
        "result: exact final values, and the summary lists the groups.\n\n"
        "Each run cell is followed by a cell that checks what the run did (those outputs are compared by "
        "`make test`; the run cells hold timings)."),
    new_code_cell("%load_ext workbench"),
    new_markdown_cell("## Memory\n\n`--memory` caps the guest's linear memory. Each refused growth is a `memory` "
                      "violation: the guest sees `MemoryError`, the memory gauge turns red and says how many "
                      "grows were refused."),
    new_code_cell("%%sandbox hungry --lang python --memory 40MB --timeout 20s -o hungry\n"
                  "import time\n"
                  "blocks = []\n"
                  "try:\n"
                  "    while True:\n"
                  "        blocks.append(bytearray(2_000_000))\n"
                  "        time.sleep(0.02)\n"
                  "except MemoryError:\n"
                  "    print('MemoryError after', len(blocks), 'blocks')\n", metadata=RUN),
    new_code_cell("sorted({(v.kind, v.decision) for v in hungry.violations}), hungry.exit_code"),
    new_markdown_cell("## CPU share and the deadline\n\n`--cpu 25%` throttles a spinning guest to a quarter of "
                      "a core (enforcement, not a violation: the CPU gauge turns amber); `--timeout` stops it "
                      "when the wall-clock limit is reached (a `time` kill, red)."),
    new_code_cell("%%sandbox spinner --cpu 25% --timeout 1500ms -o spinner\n"
                  "(module (memory (export \"memory\") 1)\n"
                  "  (func (export \"_start\") (loop $spin (br $spin))))\n", metadata=RUN),
    new_code_cell("[(v.kind, v.decision, v.capability) for v in spinner.violations], "
                  "spinner.usage.cpu_share < 0.5"),
    new_markdown_cell("## Fuel\n\n`--fuel` is a deterministic instruction budget: the same module stops at the "
                      "same instruction on every machine."),
    new_code_cell("%%sandbox counter --fuel 3e8 --timeout 20s -o counter\n"
                  "(module (memory (export \"memory\") 1)\n"
                  "  (func (export \"_start\") (local $i i64)\n"
                  "    (loop $count (local.set $i (i64.add (local.get $i) (i64.const 1))) (br $count))))\n",
                  metadata=RUN),
    new_code_cell("[(v.kind, v.decision, v.capability) for v in counter.violations], counter.usage.fuel_used"),
    new_markdown_cell("## Output\n\n`output:limit` caps stdout + stderr together; the rest is cut (recorded once, "
                      "not per write) and the guest goes on."),
    new_code_cell("%%sandbox chatty --lang python --cap output:limit:20kB --timeout 20s -o chatty\n"
                  "import time\n"
                  "for i in range(60):\n"
                  "    print(f'line {i:03d} ' + 'x' * 1000)\n"
                  "    time.sleep(0.01)\n", metadata=RUN),
    new_code_cell("[(v.kind, v.decision) for v in chatty.violations], chatty.usage.output_bytes, "
                  "chatty.usage.output_dropped_bytes > 0"),
    new_markdown_cell("## Many violations, one line each\n\nA guest probing the same files again and again "
                      "makes hundreds of refusals. The timeline groups identical ones into one band "
                      "(`deny filesystem open /etc/passwd ×500`) and keeps its size whatever the count."),
    new_code_cell("%%sandbox prober --lang python --timeout 20s -o prober\n"
                  "import time\n"
                  "for i in range(500):\n"
                  "    for path in ('/etc/passwd',) + (('/etc/shadow', '/root/.ssh/id_rsa') if i % 100 == 0 else ()):\n"
                  "        try:\n"
                  "            open(path)\n"
                  "        except PermissionError:\n"
                  "            pass\n"
                  "    time.sleep(0.002)\n", metadata=RUN),
    new_code_cell("from workbench.runtime import Timeline\n"
                  "[(g.label, g.errno_name) for g in Timeline.from_events(prober.events).groups()]"),
]

nb = new_notebook(cells=cells)
nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
nbformat.write(nb, "notebooks/06-limits-and-live-gauges.ipynb")
