"""The app's shareable state: every control as a typed value, parsed from and written to a URL
(no streamlit, no torch)."""
