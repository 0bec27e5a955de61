"""The PACS dock: pick a server (from the settings, or a URL), search studies, retrieve one in the
background (progress, cancel) and open it in the study browser, send files.

All network work goes through :mod:`medviewer.pacs` in a :class:`medviewer.ui.tasks.Task` (a worker
thread that never touches Qt); errors arrive as messages through the window.
"""

from __future__ import annotations

import os

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QAbstractItemView, QComboBox, QDockWidget, QFileDialog, QFormLayout, QHBoxLayout, QLabel,
    QLineEdit, QPushButton, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget,
)

from medviewer.core.errors import MedviewerError
from medviewer.ui.progress_row import ProgressRow
from medviewer.ui.tasks import Task

COLUMNS = ("Patient ID", "Name", "Date", "Description", "Modalities", "Series", "Images")


class PacsPanel(QWidget):
    """Search, results, Retrieve, Send; one network task at a time."""

    searched = Signal(list)        # StudyResults
    retrieved = Signal(object)     # RetrieveResult
    sent = Signal(object)          # SendResult
    error = Signal(str)

    def __init__(self, open_folder=None, parent=None) -> None:
        super().__init__(parent)
        self.open_folder = open_folder    # called with a retrieved study's folder
        self.results: list = []
        self.task: Task | None = None
        layout = QVBoxLayout(self)
        row = QHBoxLayout()
        row.addWidget(QLabel("Server"))
        self.server = QComboBox()
        self.server.setEditable(True)
        self.server.setToolTip("a saved server name, or http(s)://host:port/dicom-web, or dicom://AET@host:port")
        row.addWidget(self.server, 1)
        layout.addLayout(row)
        form = QFormLayout()
        self.fields = {}
        for key, label in (("patient_id", "Patient ID"), ("patient_name", "Name"),
                           ("study_date", "Date"), ("modality", "Modality"),
                           ("accession_number", "Accession")):
            edit = QLineEdit()
            if key == "study_date":
                edit.setPlaceholderText("YYYYMMDD or YYYYMMDD-YYYYMMDD")
            edit.returnPressed.connect(self.search)
            form.addRow(label, edit)
            self.fields[key] = edit
        layout.addLayout(form)
        self.search_button = QPushButton("Search")
        layout.addWidget(self.search_button)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.doubleClicked.connect(lambda _i: self.retrieve())
        layout.addWidget(self.table, 1)
        row = QHBoxLayout()
        self.retrieve_button = QPushButton("Retrieve")
        self.send_button = QPushButton("Send files...")
        self.cancel_button = QPushButton("Cancel")
        for b in (self.retrieve_button, self.send_button, self.cancel_button):
            row.addWidget(b)
        layout.addLayout(row)
        self.progress_row = ProgressRow()
        self.progress, self.status = self.progress_row.bar, self.progress_row.label
        layout.addWidget(self.progress_row)
        self.search_button.clicked.connect(self.search)
        self.retrieve_button.clicked.connect(self.retrieve)
        self.send_button.clicked.connect(self.choose_send)
        self.cancel_button.clicked.connect(self.cancel)
        self.refresh_servers()
        self._update()

    # ---- servers -------------------------------------------------------------------------------
    def refresh_servers(self) -> None:
        """The servers saved in the settings file (``medviewer pacs`` commands add them)."""
        from medviewer.core.settings import load_settings

        current = self.server.currentText()
        try:
            names = sorted(load_settings().servers)
        except MedviewerError as exc:
            names = []
            self.status.setText(str(exc))
        self.server.clear()
        self.server.addItems(names)
        if current:
            self.server.setCurrentText(current)

    def server_text(self) -> str:
        text = self.server.currentText().strip()
        if not text:
            raise MedviewerError("choose a PACS server (a saved name or a URL)")
        return text

    # ---- tasks ---------------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        return self.task is not None and self.task.running

    def _update(self) -> None:
        self.search_button.setEnabled(not self.busy)
        self.retrieve_button.setEnabled(not self.busy and self.selected() is not None)
        self.send_button.setEnabled(not self.busy)
        self.cancel_button.setEnabled(self.busy)

    def _start(self, fn, message: str, on_done) -> Task | None:
        if self.busy:
            self._error("the PACS is busy (cancel first)")
            return None
        task = Task(fn, "pacs", self)
        self.task = task
        self.progress_row.set_fraction(None)
        self.status.setText(message + "...")
        task.progress.connect(self.progress_row.set_fraction)

        def done(result):
            self._end()
            try:
                on_done(result)
            except MedviewerError as exc:
                self._error(str(exc))

        def failed(message):
            self._end()
            self._error(message)

        def cancelled():
            self._end()
            self.status.setText("Cancelled")
        task.finished.connect(done)
        task.failed.connect(failed)
        task.was_cancelled.connect(cancelled)
        task.start()
        self._update()
        return task

    def _end(self) -> None:
        self.progress_row.reset()
        self._update()

    def cancel(self) -> None:
        if self.busy:
            self.task.cancel()
            self.status.setText("Cancelling...")

    def _error(self, message: str) -> None:
        self.status.setText(message)
        self.error.emit(message)

    # ---- search --------------------------------------------------------------------------------
    def search(self) -> Task | None:
        from medviewer.pacs import StudyQuery, open_server

        try:
            server = self.server_text()
            query = StudyQuery(**{k: e.text().strip() for k, e in self.fields.items()})
        except MedviewerError as exc:
            self._error(str(exc))
            return None
        return self._start(lambda progress, cancelled: open_server(server).find_studies(query),
                           f"Searching {server}", self._show_results)

    def _show_results(self, studies) -> None:
        self.results = list(studies)
        self.table.setRowCount(len(self.results))
        for r, s in enumerate(self.results):
            values = (s.patient_id, s.patient_name, s.study_date, s.study_description,
                      ",".join(s.modalities), "" if s.series_count is None else str(s.series_count),
                      "" if s.instance_count is None else str(s.instance_count))
            for c, v in enumerate(values):
                self.table.setItem(r, c, QTableWidgetItem(v))
        self.table.resizeColumnsToContents()
        if self.results:
            self.table.selectRow(0)
        self.status.setText(f"{len(self.results)} stud{'y' if len(self.results) == 1 else 'ies'} found")
        self._update()
        self.searched.emit(self.results)

    def selected(self):
        rows = self.table.selectionModel().selectedRows() if self.table.selectionModel() else []
        if not rows or rows[0].row() >= len(self.results):
            return None
        return self.results[rows[0].row()]

    # ---- retrieve ------------------------------------------------------------------------------
    def retrieve(self) -> Task | None:
        """Fetch the selected study into the cache (background), then open it."""
        from medviewer.pacs import default_cache_dir, open_server

        study = self.selected()
        if study is None:
            self._error("search, then choose a study to retrieve")
            return None
        try:
            server = self.server_text()
        except MedviewerError as exc:
            self._error(str(exc))
            return None

        def run(progress, cancelled):
            client = open_server(server)
            return client.retrieve_study(study.study_instance_uid, default_cache_dir(),
                                         progress=lambda done, total: progress(done / max(total or 1, 1)),
                                         cancelled=cancelled)

        def done(result):
            note = f", {result.failed} failed" if result.failed else ""
            self.status.setText(f"Retrieved {result.instance_count} images ({result.received} new{note}) "
                                f"to {result.folder}")
            self.retrieved.emit(result)
            if self.open_folder is not None:
                self.open_folder(result.folder)
        label = study.patient_id or study.study_instance_uid
        return self._start(run, f"Retrieving {label}", done)

    # ---- send ----------------------------------------------------------------------------------
    def choose_send(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self, "Send DICOM files to the PACS", "",
                                                "DICOM (*.dcm);;All files (*)")
        if paths:
            self.send_files(paths)

    def send_files(self, paths) -> Task | None:
        from medviewer.pacs import open_server

        try:
            server = self.server_text()
        except MedviewerError as exc:
            self._error(str(exc))
            return None
        paths = [os.path.abspath(p) for p in paths]

        def run(progress, cancelled):
            return open_server(server).send(paths, progress=lambda d, t: progress(d / max(t or 1, 1)),
                                            cancelled=cancelled)

        def done(result):
            text = f"Sent {len(result.sent)} file(s) to {server}"
            self.status.setText(text)
            self.sent.emit(result)
            if result.failed:
                self._error(text + "; refused: " + "; ".join(f"{os.path.basename(p)}: {why}"
                                                             for p, why in result.failed))
        return self._start(run, f"Sending {len(paths)} file(s)", done)


def add_pacs_dock(window) -> tuple[PacsPanel, QDockWidget]:
    """A "PACS" dock, tabbed behind the plugins dock when there is one; a retrieved study opens
    in the window's study browser."""
    panel = PacsPanel(open_folder=window.open_path)
    panel.error.connect(window._fail)
    return panel, window.add_right_dock("PACS", "pacs-dock", panel)
