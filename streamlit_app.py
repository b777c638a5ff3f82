"""convmix: the router. `streamlit run streamlit_app.py`.

st.navigation lists the pages of convmix.ui.navigation explicitly; the shared sidebar (the ACmix
configuration, bound to the URL) is drawn here so that it keeps its state across pages.
"""

import streamlit as st

from convmix.budget import release_freed_memory
from convmix.runtime import configure_torch
from convmix.ui.cache import adopt_secret_budget
from convmix.ui.navigation import build_pages, mark_router_ran
from convmix.ui.session import limit_uploads
from convmix.ui.sidebar import config_sidebar

st.set_page_config(page_title="convmix: ACmix and Conv2d bias, explained", page_icon="🧩", layout="wide")
configure_torch()
adopt_secret_budget()
limit_uploads()
mark_router_ran()

page = st.navigation(build_pages())
config_sidebar()
try:
    page.run()
finally:
    release_freed_memory()  # the memory budget counts what the process holds, freed heap included
