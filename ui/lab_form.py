"""The lab's form: a preset and the knobs behind it, returning a TrainConfig or the reasons it cannot start."""

from __future__ import annotations

import dataclasses

import streamlit as st
import torch

from classroom import data, models
from classroom.config import MAX_BATCH_SIZE, MAX_EPOCHS, OPTIMIZERS, PRECISIONS, PRESETS, SCHEDULES, ConfigError, TrainConfig
from ui import download, i18n, state
from ui.i18n import N_, _

PRESET_HELP = {
    "tutorial": N_("the PyTorch CIFAR-10 tutorial exactly: Net, batch 4, SGD lr 0.001 momentum 0.9, 2 epochs"),
    "tutorial-fast": N_("the tutorial's Net with bigger batches and a one-cycle schedule: the same accuracy, much sooner"),
    "fast-cnn": N_("a fast BatchNorm CNN with augmentation: far higher accuracy in a few minutes on a GPU"),
}
SOURCES = {"cifar10": "CIFAR-10", "shapes": N_("shapes (synthetic)"), "folder": N_("image folder")}


def available_devices() -> dict[str, str]:
    """The devices this machine really has, named for people: {config value: label}."""
    options = {"cpu": "CPU"}
    for i in range(torch.cuda.device_count()):
        p = torch.cuda.get_device_properties(i)
        options[f"cuda:{i}"] = f"GPU {i}: {p.name} ({p.total_memory / 2**30:.0f} GiB)"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        options["mps"] = "Apple GPU (mps)"
    best = list(options)[1] if len(options) > 1 else "cpu"
    return {"auto": _("auto: {device}").format(device=options[best])} | options


@st.cache_data(ttl=10, show_spinner=False)
def _folder_problem(source: str, roots: tuple) -> str | None:
    """The layout problem of an image folder, checked at most every 10 s (a big folder takes a moment to list)."""
    try:
        data.check_folder(source, roots)
    except data.DataError as e:
        return str(e)
    return None


def form(data_dir: str) -> tuple[TrainConfig | None, list[str]]:
    """Draw the form; return the validated config, or None and the messages that say what to fix."""
    if "lab_preset" in st.session_state:  # a lesson's "open in the lab" button asked for this preset
        wanted = st.session_state.pop("lab_preset")
        if wanted in PRESETS:
            _remember("lab.preset", wanted)
            st.session_state.pop("lab.preset", None)  # drop the widget's own value so the wanted one shows
    top = st.columns([1, 1, 1])
    name = _select(top[0], _("Preset"), list(PRESETS), "lab.preset", "tutorial", help=_("Each preset fills in the knobs below."))
    top[0].caption(_(PRESET_HELP[name]) if name in PRESET_HELP else "")
    base = PRESETS[name]
    k = lambda field: f"lab.{name}.{field}"  # knobs are per preset: picking a preset shows its values

    default_source = "cifar10" if data.cifar10_present(data_dir) else "shapes"
    page = i18n.bound()
    source_label = lambda s: page.gettext(SOURCES[s])
    source = _select(top[1], _("Data set"), list(SOURCES), "lab.source", default_source, format_func=source_label, radio=True)
    folder = ""
    if source == "folder":
        folder = _text(top[1], _("Folder path"), "lab.folder", "", placeholder=_("/path/holding/train/and/test"))
    elif source == "shapes":
        top[1].caption(_("Synthetic: ten classes of drawn shapes, made in a second. For demos and offline machines."))
        if not data.cifar10_present(data_dir):
            top[1].caption(_("CIFAR-10 is not downloaded yet: choose it above to download it."))
    devices = available_devices()
    device = _select(top[2], _("Device"), list(devices), "lab.device", "auto", format_func=devices.get)

    c = st.columns(4)
    model = _select(c[0], _("Model"), list(models.MODELS), k("model"), base.model)
    c[0].caption(_(models.DESCRIPTIONS[model]))
    epochs = _number(c[1], _("Epochs"), k("epochs"), base.epochs, min_value=1, max_value=MAX_EPOCHS)
    batch_size = _number(
        c[2], _("Batch size"), k("batch_size"), base.batch_size, min_value=1, max_value=MAX_BATCH_SIZE, help=_("images per step")
    )
    lr = _number(c[3], _("Learning rate"), k("lr"), float(base.lr), step=0.001, format="%.4f")
    c = st.columns(4)
    optimizer = _select(c[0], _("Optimizer"), list(OPTIMIZERS), k("optimizer"), base.optimizer)
    momentum = _number(c[1], _("Momentum"), k("momentum"), float(base.momentum), step=0.05, format="%.3f")
    seed = _number(c[2], _("Seed"), k("seed"), base.seed or 0, min_value=0, max_value=2**32 - 1, help=_("same seed, same run"))
    augment = _toggle(c[3], _("Augment (crop + flip)"), k("augment"), base.augment)

    with st.expander(_("More knobs")):
        c = st.columns(4)
        schedule = _select(c[0], _("Schedule"), list(SCHEDULES), k("schedule"), base.schedule)
        warmup = _number(c[1], _("Warm-up (fraction)"), k("warmup"), float(base.warmup), step=0.05)
        weight_decay = _number(c[2], _("Weight decay"), k("wd"), float(base.weight_decay), step=1e-4, format="%.5f")
        smoothing = _number(c[3], _("Label smoothing"), k("ls"), float(base.label_smoothing), step=0.05)
        c = st.columns(4)
        precision = _select(c[0], _("Precision"), list(PRECISIONS), k("precision"), base.precision)
        log_interval = _number(
            c[1], _("Loss report every (steps)"), k("log_interval"), base.log_interval, min_value=1, max_value=10**6
        )
        max_steps = _number(
            c[2], _("Steps per epoch cap (0 = all)"), k("max_steps"), base.max_steps, min_value=0, max_value=10**6
        )
        run_name = _text(c[3], _("Run name"), k("name"), base.name, max_chars=60)
        c = st.columns(4)
        channels_last = _toggle(c[0], "channels_last", k("channels_last"), base.channels_last)
        tta = _toggle(c[1], _("Test-time flip"), k("tta"), base.tta)
        compile_ = _toggle(c[2], "torch.compile", k("compile"), base.compile, help=_("tens of seconds to compile first"))
        minutes = _number(
            c[3], _("Time budget (minutes, 0 = use epochs)"), k("minutes"), float(base.minutes), min_value=0.0,
            max_value=24 * 60.0, step=0.5, help=_("the run measures its first steps and sizes epochs and schedule to fill it"),
        )  # fmt: skip

    data_source = f"folder:{folder.strip()}" if source == "folder" else source
    config = dataclasses.replace(
        base, model=model, epochs=int(epochs), batch_size=int(batch_size), lr=float(lr), optimizer=optimizer,
        momentum=float(momentum), seed=int(seed), augment=augment, schedule=schedule, warmup=float(warmup),
        weight_decay=float(weight_decay), label_smoothing=float(smoothing), precision=precision,
        log_interval=int(log_interval), max_steps=int(max_steps), name=run_name.strip(), channels_last=channels_last,
        tta=tta, compile=compile_, device=device, data=data_source, data_dir=data_dir, minutes=float(minutes),
    )  # fmt: skip
    return check(config, data_dir)


# Streamlit forgets a widget's value when a page without it is shown; the form keeps its own copy
# ("lab_keep") and uses it as the widget's default, so the knobs survive a trip to a lesson.


def _remember(key: str, value):
    st.session_state.setdefault("lab_keep", {})[key] = value
    return value


def _default(key: str, fallback):
    return st.session_state.setdefault("lab_keep", {}).get(key, fallback)


def _select(where, label: str, options: list, key: str, fallback, radio: bool = False, **kw):
    value = _default(key, fallback)
    index = options.index(value) if value in options else 0
    widget = where.radio if radio else where.selectbox
    return _remember(key, widget(label, options, index=index, key=key, **({"horizontal": True} if radio else {}) | kw))


def _number(where, label: str, key: str, fallback, **kw):
    return _remember(key, where.number_input(label, value=_default(key, fallback), key=key, **kw))


def _toggle(where, label: str, key: str, fallback: bool, **kw):
    return _remember(key, where.toggle(label, _default(key, fallback), key=key, **kw))


def _text(where, label: str, key: str, fallback: str, **kw):
    return _remember(key, where.text_input(label, _default(key, fallback), key=key, **kw))


def check(config: TrainConfig, data_dir: str) -> tuple[TrainConfig | None, list[str]]:
    """The config if it can start now, else None and one message per problem."""
    problems = []
    try:
        config.validate()
    except ConfigError as e:
        problems.append(str(e))
    if config.data == "folder:":
        problems.append(_("data: type the path of an image folder with train/<class>/ and test/<class>/ inside"))
    elif config.data.startswith("folder:") and (problem := _folder_problem(config.data, tuple(state.data_roots()))):
        problems.append(f"data: {problem}")
    elif config.data == "cifar10" and not data.cifar10_present(data_dir):
        problems.append(
            _("data: CIFAR-10 is not downloaded yet: press Download CIFAR-10 above, or pick shapes or an image folder")
        )
    if not problems and (too_big := state.manager().memory_refusal(config)):
        problems.append(f"batch_size: {too_big}")
    return (None if problems else config), problems


def data_panel(config_source: str, data_dir: str) -> None:
    """The CIFAR-10 download panel, when CIFAR-10 is chosen and absent."""
    if config_source == "cifar10" and not data.cifar10_present(data_dir):
        download.panel(data_dir)
