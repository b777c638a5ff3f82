"""convmix: the router. `streamlit run streamlit_app.py`.

st.navigation lists the pages of convmix.ui.navigation explicitly; the language menu and the shared
sidebar (the ACmix configuration), both bound to the URL, are drawn here so that they keep their
state across pages. The language is chosen first, so that everything below translates.
"""

import streamlit as st

from convmix.budget import release_freed_memory
from convmix.i18n import _
from convmix.runtime import SERVER, configure_torch
from convmix.ui.cache import adopt_secret_budget
from convmix.ui.language import choose_language, language_menu
from convmix.ui.navigation import build_pages, mark_router_ran, sidebar_note
from convmix.ui.session import limit_uploads
from convmix.ui.sidebar import config_sidebar
from convmix.ui.warmup import settle_after_first_run

configure_torch(SERVER)  # one intra-op thread per forward, in this rerun's thread (convmix.runtime)
adopt_secret_budget()
limit_uploads()
mark_router_ran()
choose_language()
st.set_page_config(page_title=_("convmix: ACmix and Conv2d bias, explained"), page_icon="🧩", layout="wide")

page = st.navigation(build_pages())
language_menu()
config_sidebar(note=sidebar_note(page))
try:
    page.run()
finally:
    release_freed_memory()  # the memory budget counts what the process holds, freed heap included
    settle_after_first_run()  # plain `streamlit run`: the imports out of the collector's way, once
