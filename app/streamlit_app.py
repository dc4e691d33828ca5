"""Tailor's analyst app: `make app` (or `streamlit run app/streamlit_app.py`). A thin router: each page is a file in
app/views/, and the logic they show lives in app/lib/ (docs/app.md)."""

import streamlit as st

from app.lib.ui import PAGES

st.set_page_config(page_title="Tailor", layout="wide")
st.navigation(
    [st.Page(path, title=title, url_path=slug, default=slug == "overview") for slug, (path, title) in PAGES.items()]
).run()
