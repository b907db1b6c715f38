"""fmlib: the verified maths behind the Flow Matching course notebooks.

Convention everywhere: t = 0 is the source (noise, x0 ~ N(0, I)), t = 1 the data
(x1 ~ q). See docs/API.md for the module map.
"""

__version__ = "0.1.0"
