"""The Models menu: get a MONAI Model Zoo bundle (what `medviewer models get` does) and list the
bundles medviewer knows. The download runs in a worker thread (:class:`medviewer.ui.tasks.Task`);
the window asks whether to trust the bundle (bundles run code) and offers a DeepEdit or VISTA3D
bundle to the click tool's engine choice.
"""

from __future__ import annotations

from PySide6.QtGui import QAction
from PySide6.QtWidgets import QInputDialog, QMessageBox


def install(window) -> None:
    menu = window.menuBar().addMenu("&Models")
    get = QAction("&Get a Model Zoo bundle...", window)
    get.triggered.connect(lambda _=False: ask_and_get(window))
    menu.addAction(get)
    known = QAction("&Known bundles", window)
    known.triggered.connect(lambda _=False: show_known(window))
    menu.addAction(known)
    window.models_menu = menu


def ask_and_get(window) -> None:
    from medviewer_plugins.monai_bundle.download import default_source

    name, ok = QInputDialog.getText(window, "Get a Model Zoo bundle",
                                    "Bundle name (e.g. spleen_ct_segmentation), optionally NAME VERSION:")
    if not ok or not name.strip():
        return
    source, ok = QInputDialog.getText(window, "Get a Model Zoo bundle", "From (monaihosting, or an http(s) address):",
                                      text=default_source())
    if ok:
        name, _, version = name.strip().partition(" ")
        start_get(window, name, version.strip() or None, source.strip() or None)


def start_get(window, name: str, version: str | None = None, source: str | None = None):
    """Download in a worker thread; on the GUI thread, ask for trust and offer a click engine."""
    from medviewer.ui.tasks import Task

    def work(progress, cancelled):
        from medviewer_plugins.monai_bundle.download import get_bundle  # MONAI: only now

        return str(get_bundle(name, version, source=source))

    task = Task(work, label=f"get {name}", parent=window)
    task.finished.connect(lambda path: installed(window, path))
    task.failed.connect(lambda message: _say(window, f"could not get {name}: {message}", error=True))
    window.models_task = task  # kept alive (and visible to tests)
    _say(window, f"downloading {name}...")
    return task.start()


def installed(window, path: str) -> None:
    from medviewer.plugins import trust
    from medviewer.plugins.model_store import read_info

    info = read_info(path, "model folder")
    answer = QMessageBox.question(window, "Trust this bundle?",
                                  f"Installed {info.name} {info.version} in {path}.\n\nA bundle runs the code in "
                                  "its configs. Trust it?")
    if answer == QMessageBox.Yes:
        trust.set_trusted(path)
        if info.click_engine and getattr(window, "segment_editor", None) is not None:
            window.segment_editor.add_bundle_engine(info.path)
    _say(window, f"installed {info.name} in {path}" + ("" if trust.is_trusted(path) else " (not trusted)"))


def show_known(window) -> None:
    from medviewer.plugins.model_store import known_bundles, models_folder

    rows = "\n".join(b.describe() + f"\n    {b.path}" for b in known_bundles()) or "none"
    QMessageBox.information(window, "Known bundles", f"{rows}\n\nModel folder: {models_folder()}")


def _say(window, text: str, error: bool = False) -> None:
    label = getattr(window, "status_label", None)
    if label is not None:
        label.setText(text)
    if error:
        QMessageBox.warning(window, "Models", text)
