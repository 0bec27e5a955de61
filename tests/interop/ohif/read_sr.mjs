// Read a DICOM SR as OHIF re-opens one for editing: @cornerstonejs/adapters'
// MeasurementReport.generateToolState, the function OHIF's cornerstone-dicom-sr extension calls.
//   node read_sr.mjs SR.dcm SERIES.json       (SERIES.json: see metadata.mjs)
// Prints JSON: each measurement group's tracking identifier and the tool OHIF would choose for
// it, the warnings of groups that could not be read, and each tool's annotations (handle points
// in patient mm, the image they lie on, the cached statistics, the label).
import dcmjs from 'dcmjs';
import { metaData } from '@cornerstonejs/core';
import { adaptersSR } from '@cornerstonejs/adapters';
import { readBuffer, registerSeries, uidOf } from './metadata.mjs';

const { MeasurementReport } = adaptersSR.Cornerstone3D;
const [srPath, seriesPath] = process.argv.slice(2);
const imageIds = {};
for (const imageId of registerSeries(seriesPath)) imageIds[`${uidOf(imageId)}:1`] = imageId;
const message = dcmjs.data.DicomMessage.readFile(readBuffer(srPath));
const dataset = dcmjs.data.DicomMetaDictionary.naturalizeDataset(message.dict);

const asList = (v) => (v === undefined ? [] : Array.isArray(v) ? v : [v]);
const report = asList(dataset.ContentSequence).find(
  (i) => i.ConceptNameCodeSequence?.[0]?.CodeMeaning === 'Imaging Measurements');
const groups = asList(report?.ContentSequence).map((group) => {
  const id = asList(group.ContentSequence).find(
    (i) => i.ConceptNameCodeSequence?.[0]?.CodeMeaning === 'Tracking Identifier')?.TextValue ?? null;
  return { trackingIdentifier: id, tool: id ? MeasurementReport.getAdapterForTrackingIdentifier(id)?.toolType ?? null : null };
});

// the adapters log each measurement with console.log and each failure with console.warn
const log = console.log;
const warnings = [];
console.log = () => {};
console.warn = (...args) => warnings.push(args.filter((a) => typeof a === 'string' || a instanceof Error).map(String).join(' '));
const state = MeasurementReport.generateToolState(dataset, imageIds, metaData);
const tools = {};
for (const [tool, list] of Object.entries(state)) {
  tools[tool] = list.map((m) => ({
    points: m.annotation.data.handles.points.map((p) => Array.from(p)),
    image: uidOf(m.annotation.metadata.referencedImageId),
    frameOfReference: m.annotation.metadata.FrameOfReferenceUID ?? null,
    stats: Object.values(m.annotation.data.cachedStats ?? {})[0] ?? null,
    label: m.annotation.data.label ?? null,
  }));
}
log(JSON.stringify({ groups, warnings, tools }));
