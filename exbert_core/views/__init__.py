"""What the pages and the command line show: layer sweeps, the head atlas, figures, tables and
every export (no streamlit)."""
