"""A run drawn from its Snapshot: live progress and charts, per-epoch results, gallery, misclassified browser, checkpoint."""

from __future__ import annotations

import functools
import hashlib
import io

import numpy as np
import streamlit as st
import torch
from PIL import Image

from classroom import checkpoints, data
from classroom.evaluation import Evaluation, accuracy_lines, confusion_lines
from classroom.runs import NotYours, RunManager, Snapshot
from classroom.training import reevaluate
from ui import access, charts, i18n, notebooks, plain, state
from ui.i18n import _, ngettext

POLL_SECONDS = 1.0
STATUS_ICONS = {
    "queued": ":material/hourglass_top:",
    "loading": ":material/downloading:",
    "running": ":material/directions_run:",
    "paused": ":material/pause_circle:",
    "finished": ":material/check_circle:",
    "stopped": ":material/stop_circle:",
    "failed": ":material/error:",
    "interrupted": ":material/warning:",
    "damaged": ":material/report:",
}  # fmt: skip (markdown icons: they render without an emoji font)
GALLERY_SIZE = 16
ZOOM = 3  # 32x32 images drawn 96x96 with crisp pixels


def show(run_id: str, key: str) -> None:
    """The whole run: polled once a second while it is active, drawn once when it has ended."""
    snap = state.manager().get(run_id)
    if snap is None:
        st.warning(_("There is no run {run} on this server.").format(run=plain.md(repr(run_id))))
    elif snap.active:
        _live(run_id, key)
    else:
        view(snap, key)
        final(snap, key)


@st.fragment(run_every=POLL_SECONDS)
def _live(run_id: str, key: str) -> None:
    snap = state.manager().get(run_id)
    view(snap, key)
    if not snap.active:
        st.rerun(scope="app")  # the run ended: redraw once without the poller, with the final results


def duration(seconds: float) -> str:
    """1 h 02 min, 3 min 05 s or 12 s."""
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


def view(snap: Snapshot, key: str) -> None:
    """Status, controls, progress, loss and accuracy charts, and the latest epoch's results."""
    status_line(snap)
    if snap.status == "damaged":
        return  # its files could not be trusted: the status line says why, and nothing from them is drawn
    controls(snap, key)
    progress(snap)
    left, right = st.columns(2)
    with left:
        if snap.losses:
            st.plotly_chart(charts.loss_figure(snap), key=f"{key}-loss", config=charts.CONFIG)
            if smoothing := snap.config.label_smoothing:
                left_out = _("Plain cross-entropy, like the test loss: the label smoothing ({smoothing}) is left out.")
                st.caption(left_out.format(smoothing=i18n.short(smoothing)))
        elif snap.active:
            st.caption(_("The loss chart fills in after the first log interval."))
        else:
            st.caption(_("No loss was reported: the run ended before its first log interval."))
    with right:
        if snap.epochs:
            st.plotly_chart(charts.accuracy_figure(snap), key=f"{key}-accuracy", config=charts.CONFIG)
        elif snap.active:
            st.caption(_("Train and test accuracy appear after the first epoch."))
        else:
            st.caption(_("No epoch ended, so there is no per-epoch accuracy (the final one is in the runs table)."))
    if snap.epochs:
        epoch_results(snap, key)
    sample_predictions(snap)


def status_line(snap: Snapshot) -> None:
    icon = STATUS_ICONS.get(snap.status, "")
    c = snap.config
    data_label = plain.md(i18n.data_label(snap.data_label or c.data))  # user-given, like the name and the message: shown as typed
    line = ngettext(
        "**{status}** · run `{run}` · {model} on {data} · {device} · batch {batch}, lr {lr}, {optimizer}, {epochs} epoch",
        "**{status}** · run `{run}` · {model} on {data} · {device} · batch {batch}, lr {lr}, {optimizer}, {epochs} epochs",
        c.epochs,
    )
    text = f"{icon} " + line.format(
        status=i18n.status_name(snap.status), run=snap.id, model=c.model, data=data_label, device=snap.device,
        batch=c.batch_size, lr=i18n.short(c.lr), optimizer=c.optimizer, epochs=c.epochs,
    )  # fmt: skip
    name = plain.md(c.name)
    st.markdown(text + (f" · *{name}*" if name else ""))
    if snap.message and snap.status != "finished":
        (st.error if snap.status == "failed" else st.info)(plain.md(snap.message))
    if not snap.saved:
        st.warning(_("This run's record could not be written to disk: its results live in memory only."))


def controls(snap: Snapshot, key: str) -> None:
    """Pause/Resume and Stop for an active run, shown to its owner (Stop also to the instructor), no one else."""
    if not snap.active:
        return
    me, instructor = state.owner(), access.is_instructor()
    may = {action: RunManager.may_control(snap, me, instructor, action) for action in ("pause", "resume", "stop")}
    if not any(may.values()):
        return
    row = st.container(horizontal=True)  # each button as wide as its words (Pozastavit did not fit an eighth of the page)
    if snap.status == "paused" and may["resume"]:
        row.button(_("Resume"), icon=":material/play_arrow:", key=f"{key}-resume", on_click=_act, args=("resume", snap.id))
    elif may["pause"]:
        pause = {"on_click": _act, "args": ("pause", snap.id), "disabled": snap.status != "running"}
        row.button(_("Pause"), icon=":material/pause:", key=f"{key}-pause", **pause)
    row.button(_("Stop"), icon=":material/stop:", key=f"{key}-stop", on_click=_act, args=("stop", snap.id))


def _act(action: str, run_id: str) -> None:
    """A control's click, checked by the RunManager against who clicked (a forged click is refused there too)."""
    mgr, me = state.manager(), state.owner()
    try:
        if action == "stop":
            mgr.stop(run_id, by=me, instructor=access.is_instructor())
        else:
            getattr(mgr, action)(run_id, by=me)
    except NotYours as e:
        st.toast(str(e), icon=":material/block:")


def progress(snap: Snapshot) -> None:
    """Queue position, or the progress bar with epoch, step, speed and ETA."""
    if snap.status == "queued":
        waiting = _("Waiting for {device}: position {position} in the queue. It starts when the runs ahead end.")
        st.info(waiting.format(device=snap.device, position=snap.queue_position))
        return
    if snap.status == "loading":
        st.progress(0.0, text=_("Loading the data set {data}…").format(data=plain.md(snap.config.data)))
        return
    b = snap.last_batch
    if b is None:
        if snap.active:
            st.progress(0.0, text=_("Starting: the first numbers arrive after the first log interval…"))
        return
    where = {
        "epoch": b["epoch"], "epochs": snap.planned_epochs, "step": i18n.number(b["step"], 0),
        "steps": i18n.number(b["steps_per_epoch"], 0), "speed": i18n.number(b["images_per_sec"], 0),
    }  # fmt: skip
    if snap.active:
        text = _("epoch {epoch} of {epochs} · step {step} of {steps} · {speed} images/s · about {left} left")
        text = text.format(**where, left=duration(b["eta_seconds"]))
    else:
        text = _("epoch {epoch} of {epochs} · step {step} of {steps} · {speed} images/s").format(**where)
    st.progress(min(snap.progress, 1.0), text=text)
    c = st.columns(4)
    c[0].metric(_("Loss (last interval)"), i18n.number(b["loss"], 3, grouping=False))
    c[1].metric(_("Images per second"), i18n.number(b["images_per_sec"], 0))
    c[2].metric(_("Training time"), duration(b["train_seconds"]))
    if snap.epochs:
        e = snap.epochs[-1]
        delta = None
        if len(snap.epochs) > 1:
            change = i18n.number(100 * (e["test_accuracy"] - snap.epochs[-2]["test_accuracy"]), 1, grouping=False, plus=True)
            delta = _("{change} pts").format(change=change)  # percentage points
        title = _("Test accuracy (epoch {epoch})").format(epoch=e["epoch"])
        c[3].metric(title, i18n.percent(e["test_accuracy"]), delta)


def epoch_results(snap: Snapshot, key: str) -> None:
    """The last epoch's test results: per-class bars and the tutorial's lines, the confusion matrix."""
    e = snap.epochs[-1]
    classes = snap.classes or tuple(e["per_class_accuracy"])
    st.subheader(_("Test results after epoch {epoch}").format(epoch=e["epoch"]))
    left, right = st.columns(2)
    with left:
        st.plotly_chart(charts.per_class_figure(e["per_class_accuracy"]), key=f"{key}-per-class", config=charts.CONFIG)
        st.code("\n".join(confusion_lines(e["confusion"], classes)), language=None)
    with right:
        normalised = st.toggle(_("Row-normalised (fraction of each true class)"), key=f"{key}-normalised")
        confusion = charts.confusion_figure(e["confusion"], classes, normalised)
        st.plotly_chart(confusion, key=f"{key}-confusion", config=charts.CONFIG)


def sample_predictions(snap: Snapshot) -> None:
    """The run's fixed test images with the model's latest guesses: after each epoch while it trains, then the final ones."""
    if not snap.samples:
        return
    classes = snap.classes or (tuple(snap.epochs[-1]["per_class_accuracy"]) if snap.epochs else ())
    if snap.samples_epoch:
        title = _("Sample predictions after epoch {epoch} of {epochs}").format(
            epoch=snap.samples_epoch, epochs=snap.planned_epochs
        )
    else:
        title = _("Sample predictions when the run was stopped")
    st.subheader(title)
    n = len(snap.samples)
    if snap.active:
        caption = ngettext(
            "The same {n} test image after every epoch, one per class: watch the guesses change as it learns.",
            "The same {n} test images after every epoch, one per class: watch the guesses change as it learns.",
            n,
        )
    else:
        caption = ngettext(
            "The same {n} test image the run showed after every epoch, with its final guesses.",
            "The same {n} test images the run showed after every epoch, with its final guesses.",
            n,
        )
    st.caption(caption.format(n=n))
    images = state.manager().sample_images(snap.id, [s["index"] for s in snap.samples])
    per_row = 5
    for start in range(0, n, per_row):
        columns = st.columns(per_row)
        for column, sample in zip(columns, snap.samples[start : start + per_row]):
            image = images.get(sample["index"])
            top = [(classes[c], p) for c, p in sample["top"]]
            _draw_tile(column, None if image is None else image.permute(1, 2, 0).numpy(), classes[sample["label"]], top)


def final(snap: Snapshot, key: str) -> None:
    """After the run: the checkpoint download, the gallery and the misclassified browser."""
    if (checkpoint := state.manager().checkpoint(snap.id)) is not None:  # from memory when the disk was full
        st.download_button(
            _("Download the trained checkpoint"), checkpoint, file_name=f"{snap.id}-{snap.config.model}.pt",
            mime="application/octet-stream", icon=":material/download:", key=f"{key}-checkpoint", on_click="ignore",
        )  # fmt: skip
    if snap.status != "damaged":  # a damaged record's settings are stand-ins: no notebook of them
        notebooks.run_button(snap, key)
    if snap.status not in ("finished", "stopped"):
        return
    found = state.manager().evaluation(snap.id)
    if found is None:
        st.caption(_("The test-set predictions are not available (no checkpoint, or its data set is missing here)."))
        return
    evaluation, dataset = found
    gallery(evaluation, dataset, key)
    misclassified(evaluation, dataset, key)


def _tile(container, evaluation: Evaluation, dataset: data.Dataset, index: int) -> None:
    """One test image, zoomed, with its true label, the prediction and the top-3 probabilities."""
    image = dataset.test_x[index].permute(1, 2, 0).numpy()
    true = evaluation.classes[int(evaluation.labels[index])]
    _draw_tile(container, image, true, evaluation.top_k(index, 3))


def _draw_tile(container, image: np.ndarray | None, true: str, top: list[tuple[str, float]]) -> None:
    """An HWC uint8 image (None: not to be had), zoomed, its true class, the guess (top[0]) and the top probabilities;
    classes by their data set's names, shown in the page's language."""
    if image is not None:
        container.image(_png(np.ascontiguousarray(image).tobytes(), image.shape), output_format="PNG")
    guess = top[0][0]
    true_md, guess_md = plain.md(i18n.class_name(true)), plain.md(i18n.class_name(guess))  # may be an image folder's subfolders
    if guess == true:
        container.markdown(f":green[:material/check:] **{true_md}**")
    else:
        container.markdown(f":red[:material/close: **{guess_md}**]  \n" + _("true: **{name}**").format(name=true_md))
    shown = (f"{plain.md(i18n.class_name(name))} {i18n.percent(p, 0, space='')}" for name, p in top)
    container.caption(" · ".join(shown))


@functools.lru_cache(maxsize=256)  # at most about 8 MB of PNGs
def _png(pixels: bytes, shape: tuple[int, ...]) -> bytes:
    """An HWC uint8 image zoomed ZOOM times with crisp pixels, as PNG: encoded once, not on every poll of a live run.

    st.image encodes an array as JPEG on every call (blurring the pixel edges); PNG bytes with output_format="PNG"
    it passes on as they are."""
    image = np.frombuffer(pixels, dtype=np.uint8).reshape(shape)
    image = np.repeat(np.repeat(image, ZOOM, axis=0), ZOOM, axis=1)
    out = io.BytesIO()
    Image.fromarray(image).save(out, format="PNG")
    return out.getvalue()


def _grid(evaluation: Evaluation, dataset: data.Dataset, indices: list[int], per_row: int = 8) -> None:
    for start in range(0, len(indices), per_row):
        columns = st.columns(per_row)
        for column, index in zip(columns, indices[start : start + per_row]):
            _tile(column, evaluation, dataset, index)


def gallery(evaluation: Evaluation, dataset: data.Dataset, key: str) -> None:
    """A sample of test images with predictions; wrong ones marked."""
    st.subheader(_("Sample test images"))
    if dataset.synthetic:
        st.caption(_("These are synthetic shapes, not photos."))
    draw = st.session_state.get(f"{key}-draw", 0)
    g = torch.Generator().manual_seed(draw)
    indices = torch.randperm(len(evaluation.labels), generator=g)[:GALLERY_SIZE].tolist()
    wrong = sum(int(evaluation.predictions[i] != evaluation.labels[i]) for i in indices)
    drawn = _("{right} of {total} right on this draw; overall {accuracy}.")
    st.caption(drawn.format(right=len(indices) - wrong, total=len(indices), accuracy=i18n.percent(evaluation.accuracy)))
    _grid(evaluation, dataset, indices)
    if st.button(_("Show other images"), key=f"{key}-redraw", icon=":material/shuffle:"):
        st.session_state[f"{key}-draw"] = draw + 1
        st.rerun()


def misclassified(evaluation: Evaluation, dataset: data.Dataset, key: str) -> None:
    """Browse the wrong predictions by (true, predicted) pair, most frequent first."""
    st.subheader(_("Misclassified examples"))
    m = evaluation.confusion
    pairs = sorted(((int(m[t, p]), t, p) for t in range(len(m)) for p in range(len(m)) if t != p and m[t, p]), reverse=True)
    if not pairs:
        st.success(_("No test image was misclassified."))
        return
    names = [plain.line(i18n.class_name(c)) for c in evaluation.classes]  # option labels are plain text
    mistake = lambda n: ngettext(
        "true {true} → predicted {predicted} ({n} image)", "true {true} → predicted {predicted} ({n} images)", n
    )
    labels = {(t, p): mistake(n).format(true=names[t], predicted=names[p], n=n) for n, t, p in pairs}
    pair = st.selectbox(_("Which mistake"), list(labels), format_func=labels.get, key=f"{key}-pair")
    indices = evaluation.misclassified(*pair).tolist()
    pages = max(1, -(-len(indices) // GALLERY_SIZE))
    page = st.number_input(_("Page"), 1, pages, 1, key=f"{key}-page-{pair}") if pages > 1 else 1
    _grid(evaluation, dataset, indices[(page - 1) * GALLERY_SIZE : page * GALLERY_SIZE])


def uploaded_checkpoint(data_dir: str) -> None:
    """Upload a checkpoint, evaluate it on its data set, show the tutorial's lines and the per-class chart."""
    upload = st.file_uploader(_("Evaluate a checkpoint file (.pt)"), type=["pt", "pth"], key="lab.upload")
    if upload is None:
        return
    raw = upload.getvalue()
    digest = hashlib.sha1(raw).hexdigest()
    cached = st.session_state.get("lab.upload-result")
    if not cached or cached[0] != digest:
        try:
            cached = (digest, *_evaluate_upload(raw, data_dir))
        except (checkpoints.CheckpointError, data.DataError) as e:
            st.error(plain.md(e))
            return
        st.session_state["lab.upload-result"] = cached
    info, evaluation = cached[1:]
    c = info["config"]
    trained = ngettext(
        "**{model}** trained on **{data}** ({epochs} epoch, batch {batch}, lr {lr}).",
        "**{model}** trained on **{data}** ({epochs} epochs, batch {batch}, lr {lr}).",
        c.epochs,
    )
    st.markdown(trained.format(model=c.model, data=plain.md(c.data), epochs=c.epochs, batch=c.batch_size, lr=i18n.short(c.lr)))
    st.code("\n".join(accuracy_lines(evaluation)), language=None)
    st.plotly_chart(charts.per_class_figure(evaluation.per_class_accuracy), key="lab-upload-per-class", config=charts.CONFIG)


def _evaluate_upload(raw: bytes, data_dir: str) -> tuple[dict, Evaluation]:
    model, info = checkpoints.load(raw)  # weights_only: nothing in the file is executed
    c = info["config"]
    with st.spinner(_("Loading {data} and evaluating…").format(data=plain.md(c.data))):
        dataset = data.load(c.data, data_dir, roots=state.data_roots())  # the file names the folder: same checks as the lab
        if list(dataset.classes) != list(info["classes"]):
            refusal = _("this checkpoint knows the classes {theirs}, but {data} here has {ours}: it cannot be evaluated on it")
            raise checkpoints.CheckpointError(
                refusal.format(theirs=_few(info["classes"]), data=c.data, ours=_few(dataset.classes))
            )
        evaluation = reevaluate(model, info, dataset)  # as its run evaluated: the numbers the run recorded
    return info, evaluation


def _few(names, shown: int = 4) -> str:
    """A class list for a message: the first few names and how many there are, never thousands of them."""
    names = list(names)
    if len(names) <= shown:
        return ", ".join(names)
    return _("{names}, … ({count} in all)").format(names=", ".join(names[:shown]), count=len(names))
