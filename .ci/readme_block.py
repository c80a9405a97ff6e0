"""Prints the python code blocks of one section of a Markdown page (by its heading), for the wheel check."""

import re
import sys

page, heading = sys.argv[1], sys.argv[2]
with open(page) as f:
    text = f.read()
section = re.split(r"^## ", text, flags=re.M)
body = next(s for s in section if s.startswith(heading))
print("\n".join(re.findall(r"^```python\n(.*?)^```", body, flags=re.M | re.S)))
