"""Tailor's analyst app: `make app` (or `streamlit run app/streamlit_app.py`). A thin router: each page is a file in
app/views/, and the logic they show lives in app/lib/ (docs/app.md)."""

import streamlit as st

from app.lib.ui import PAGES

st.set_page_config(page_title="Tailor", layout="wide")
pages = {slug: st.Page(path, title=title, url_path=slug) for slug, (path, title) in PAGES.items()}
# Every page at /<slug>, the overview too: Streamlit serves the default page at "/" only, so "/overview", which the
# other pages' addresses suggest, was "Page not found" (a trial). The default page is a hidden one that switches to
# the overview.
start = st.Page(
    lambda: st.switch_page(pages["overview"]), title="Tailor", url_path="start", default=True, visibility="hidden"
)
st.navigation([start, *pages.values()]).run()
