"""Which module and input the walkthrough shows: the URL's, else the choice made on another page,
else the sidebar's module on a photograph.

The choice is a `convmix.sources.Source`, kept in the session (`remember`, `chosen`, `forget`) and
named in the walkthrough's URL (`walkthrough_params`: `net`, `net_seed`, `layer`, `picture`,
`image_size`; a network built here is reproduced by its URL alone, an upload or a trained network
only in the session that holds it). Two pages choose: "ACmix in ResNet" (a layer of a network built
here or uploaded) and "Train it live" (`open_trained_button`: the trained ACmix layer, frozen as it
is at the click, on a held-out digit). `source_for_walkthrough(config)` is what the walkthrough
reads: the URL's source, else the session's choice, else `default_source(config)`, the sidebar's
module on the first built-in photograph through the seed's stem. `materialized(source)` gives the
module and its input, built once and kept in one byte-bounded cache that every session shares
(`network_cache`), as are the networks, the uploads and the trained copies it needs.
"""

from __future__ import annotations

import copy
import dataclasses

import streamlit as st

from convmix import images, sources
from convmix.bias import MAX_UPLOAD_BYTES, ImageError
from convmix.budget import memory_budget
from convmix.bytecache import ByteCache
from convmix.config import ACmixConfig
from convmix.i18n import _
from convmix.network_text import upload_picture_error
from convmix.train_live import PROBE
from convmix.ui.cache import make_room
from convmix.ui.language import language_params

WALKTHROUGH = "pages/walkthrough.py"
CHOICE_KEY = "_convmix_walkthrough_source"
PICTURES_KEY = "_convmix_uploaded_pictures"  # short hash -> UploadedPicture, this session's uploads
CHECKPOINTS_KEY = "_convmix_uploaded_checkpoints"  # short hash -> CheckpointRef
TRAINED_KEY = "_convmix_trained_networks"  # short hash -> (DigitsRef, frozen network), this session's
MAX_TRAINED = 4  # trained copies a session keeps (each well under 1 MB), the oldest dropped first


@st.cache_resource(max_entries=4, show_spinner=False)
def network_cache(max_bytes: int) -> ByteCache:
    """Built networks, uploaded checkpoints and pictures, trained copies, and materialised sources,
    for every session: at most `max_bytes` in all (a third of the memory budget), least recently used
    first out; new work that does not fit the process budget evicts from it (CachedResolver.make_room)."""
    return ByteCache(max_bytes)


def resolver() -> sources.CachedResolver:
    """The shared resolver, with this session's trained copies; work that does not fit evicts the app's
    cached traces and modules first (convmix.ui.cache.make_room), then networks and uploads."""
    trained = {ref.sha256: net for ref, net in st.session_state.get(TRAINED_KEY, {}).values()}
    return sources.CachedResolver(network_cache(sources.max_network_bytes(memory_budget())), trained, make_room)


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


HASHES_KEY = "_convmix_upload_hashes"  # uploader file_id -> SHA-256, so that a file is hashed once


def upload_hash(file) -> str:
    """The SHA-256 of an uploaded file, computed once per upload."""
    hashes = st.session_state.setdefault(HASHES_KEY, {})
    if file.file_id not in hashes:
        hashes[file.file_id] = sources.sha256(file.getvalue())
    return hashes[file.file_id]


def picture_upload(key: str, store: str) -> tuple[str, sources.UploadedPicture | None]:
    """Draw a picture uploader (widget `key`) and say what it holds: ("new", picture) for a file
    uploaded now, checked and kept in the shared cache; ("earlier", picture) for the one this page
    remembered under `store` while the uploader is empty; ("none", None) when there is neither; and
    ("refused", None) for a file that is not a usable picture, after saying why."""
    file = st.file_uploader(_("Picture (PNG or JPEG)"), type=["png", "jpg", "jpeg"], key=key,
                            max_upload_size=max(1, MAX_UPLOAD_BYTES // 2**20))
    if file is None:
        earlier = st.session_state.get(store)
        return ("none", None) if earlier is None else ("earlier", earlier)
    data = file.getvalue()
    try:
        images.upload_rgb(data, 8, 8)  # decodes and checks it; the page resizes it later
    except ImageError as err:
        st.error(upload_picture_error(str(err)), icon=":material/error:")
        return "refused", None
    ref = sources.UploadedPicture(upload_hash(file), file.name)
    resolver().keep_picture(ref.sha256, data)
    remember_upload(ref)
    st.session_state[store] = ref
    return "new", ref


def uploaded_pictures() -> dict[str, sources.UploadedPicture]:
    return dict(st.session_state.get(PICTURES_KEY, {}))


def uploaded_checkpoints() -> dict[str, sources.CheckpointRef]:
    return dict(st.session_state.get(CHECKPOINTS_KEY, {}))


def trained_refs() -> dict[str, sources.DigitsRef]:
    return {short: ref for short, (ref, _net) in st.session_state.get(TRAINED_KEY, {}).items()}


# -- a trained network ---------------------------------------------------------------------------------


def keep_trained(trainer) -> sources.NetworkLayer:
    """Freeze the trainer's network as it is now, keep it for this session (and in the shared cache),
    and make its first ACmix layer, on the held-out digit whose attention the training page follows
    (convmix.train_live.PROBE), the walkthrough's choice. Raises SourceError("no_acmix") for the plain-convolution ablation."""
    history = trainer.history[-1] if trainer.history else {}
    ref, frozen = sources.freeze_trained(trainer.net, trainer.step_count, trainer.config,
                                         history.get("held_out_accuracy"))
    layers = list(frozen.acmix_layers())
    if not layers:
        raise sources.no_acmix()
    held = st.session_state.setdefault(TRAINED_KEY, {})
    held.pop(ref.short, None)
    held[ref.short] = (ref, frozen)
    while len(held) > MAX_TRAINED:
        held.pop(next(iter(held)))
    resolver().keep_trained(ref.sha256, frozen)
    source = sources.NetworkLayer(ref, layers[0], sources.HeldOutDigit(PROBE), sources.DIGIT_SIZE)
    remember(source)
    return source


def open_trained_button(trainer) -> None:
    """On the training page: a button that opens the trained ACmix layer in the walkthrough."""
    if not trainer.net.acmix_layers():
        return
    if st.button(_("Open the trained layer in the walkthrough"), key="run_walkthrough",
                 icon=":material/account_tree:",
                 help=_("The walkthrough shows the trained ACmix layer, with its weights as they are now, "
                        "on the input it receives for a held-out digit.")):
        source = keep_trained(trainer)
        st.switch_page(WALKTHROUGH, query_params=walkthrough_params(source))


# -- what the walkthrough reads --------------------------------------------------------------------


def walkthrough_params(source: sources.Source) -> dict[str, str]:
    """The walkthrough URL's parameters for `source`, with the language."""
    return {**sources.to_query(source), **language_params()}


def walkthrough_link(source: sources.Source, label: str | None = None) -> None:
    st.page_link(WALKTHROUGH, label=label or _("Open the walkthrough"), icon=":material/account_tree:",
                 query_params=walkthrough_params(source))


def default_picture() -> sources.BuiltinPicture:
    return sources.BuiltinPicture(images.pictures()[0].id)


def default_source(config: ACmixConfig) -> sources.RandomInitPicture:
    """The sidebar's module on the first built-in photograph, through the seed's stem."""
    return sources.RandomInitPicture(config, default_picture())


def source_for_walkthrough(config: ACmixConfig) -> tuple[sources.Source, list[sources.Note]]:
    """The source the walkthrough shows, and the URL values not taken as given (`Note`s, which
    `Note.message()` words).

    The URL decides when it names a source; else the session's choice; else the sidebar's
    configuration on the default photograph (`default_source`).
    """
    named, notes = sources.from_query(st.query_params.to_dict(), config, chosen(), uploaded_pictures(),
                                      trained_refs())
    return named or chosen() or default_source(config), notes


def materialized(source: sources.Source) -> sources.Materialized:
    """The module and its input for `source`; raises SourceError.

    Built once and kept in the shared cache; each caller gets its own copy of the module (a few MB
    at most), so that a trace, which instruments the module it runs, never meets another session's.
    """
    budget = memory_budget()
    kept = network_cache(sources.max_network_bytes(budget)).get_or_build(
        ("materialized", source, budget), lambda: sources.materialize(source, resolver(), budget))
    return dataclasses.replace(kept, module=copy.deepcopy(kept.module))
