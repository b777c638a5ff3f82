"""Which module and input the walkthrough shows: the choice made on the "ACmix in ResNet" page.

The choice is a `convmix.sources.Source`, kept in the session (`remember`, `chosen`, `forget`) and
named in the walkthrough's URL (`walkthrough_params`: `net`, `net_seed`, `layer`, `picture`,
`image_size`; a network built here is reproduced by its URL alone, an upload only in the session
that holds it). `source_for_walkthrough(config)` is what the walkthrough reads: the URL's source,
else the session's choice, else the sidebar's configuration on seeded noise; `materialized(source)`
gives the module and its input, built once and kept in one byte-bounded cache that every session
shares (`network_cache`), as are the networks and the uploads it needs.
"""

from __future__ import annotations

import copy
import dataclasses

import streamlit as st

from convmix import sources
from convmix.budget import memory_budget
from convmix.bytecache import ByteCache
from convmix.config import ACmixConfig
from convmix.i18n import _
from convmix.ui.language import language_params

WALKTHROUGH = "pages/walkthrough.py"
CHOICE_KEY = "_convmix_walkthrough_source"
PICTURES_KEY = "_convmix_uploaded_pictures"  # short hash -> UploadedPicture, this session's uploads
CHECKPOINTS_KEY = "_convmix_uploaded_checkpoints"  # short hash -> CheckpointRef


@st.cache_resource(max_entries=4, show_spinner=False)
def network_cache(max_bytes: int) -> ByteCache:
    """Built networks, uploaded checkpoints and pictures, and materialised sources, for every
    session: at most `max_bytes` in all (a third of the memory budget), least recently used first out."""
    return ByteCache(max_bytes)


def resolver() -> sources.CachedResolver:
    return sources.CachedResolver(network_cache(sources.max_network_bytes(memory_budget())))


# -- the session's choice and uploads --------------------------------------------------------------


def remember(source: sources.Source) -> None:
    st.session_state[CHOICE_KEY] = source


def chosen() -> sources.Source | None:
    return st.session_state.get(CHOICE_KEY)


def forget() -> None:
    st.session_state.pop(CHOICE_KEY, None)


def remember_upload(ref: sources.UploadedPicture | sources.CheckpointRef) -> None:
    key = PICTURES_KEY if isinstance(ref, sources.UploadedPicture) else CHECKPOINTS_KEY
    st.session_state.setdefault(key, {})[ref.short] = ref


def uploaded_pictures() -> dict[str, sources.UploadedPicture]:
    return dict(st.session_state.get(PICTURES_KEY, {}))


def uploaded_checkpoints() -> dict[str, sources.CheckpointRef]:
    return dict(st.session_state.get(CHECKPOINTS_KEY, {}))


# -- what the walkthrough reads --------------------------------------------------------------------


def walkthrough_params(source: sources.Source) -> dict[str, str]:
    """The walkthrough URL's parameters for `source`, with the language."""
    return {**sources.to_query(source), **language_params()}


def walkthrough_link(source: sources.Source, label: str | None = None) -> None:
    st.page_link(WALKTHROUGH, label=label or _("Open the walkthrough"), icon=":material/account_tree:",
                 query_params=walkthrough_params(source))


def source_for_walkthrough(config: ACmixConfig) -> tuple[sources.Source, list[str]]:
    """The source the walkthrough shows, and a sentence per URL value not taken as given.

    The URL decides when it names a source; else the session's choice; else the sidebar's
    configuration on seeded noise (`RandomInit(config)`).
    """
    named, notes = sources.from_query(st.query_params.to_dict(), config, chosen(), uploaded_pictures())
    source = named or chosen() or sources.RandomInit(config)
    return source, [n.message() for n in notes]


def materialized(source: sources.Source) -> sources.Materialized:
    """The module and its input for `source`; raises SourceError.

    Built once and kept in the shared cache; each caller gets its own copy of the module (a few MB
    at most), so that a trace, which instruments the module it runs, never meets another session's.
    """
    budget = memory_budget()
    kept = network_cache(sources.max_network_bytes(budget)).get_or_build(
        ("materialized", source, budget), lambda: sources.materialize(source, resolver(), budget))
    return dataclasses.replace(kept, module=copy.deepcopy(kept.module))
