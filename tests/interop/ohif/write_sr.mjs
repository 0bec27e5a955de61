// Write a measurement SR as OHIF exports one: @cornerstonejs/adapters' MeasurementReport.generateReport
// of Length, Bidirectional and EllipticalROI annotations (OHIF's "Create report"), written by dcmjs.
//   node write_sr.mjs SERIES.json MEASUREMENTS.json OUT.dcm
// SERIES.json: see metadata.mjs. MEASUREMENTS.json: {"Length": [...], "Bidirectional": [...],
// "EllipticalROI": [...]}, each {"image": SOP Instance UID, "points": [[x, y, z], ...] in patient
// mm, "stats": {...}, "label": "..."}: a length's two ends, a bidirectional's long then short axis' ends, an
// ellipse's top, bottom, left and right points.
import fs from 'node:fs';
import dcmjs from 'dcmjs';
import { metaData } from '@cornerstonejs/core';
import { adaptersSR } from '@cornerstonejs/adapters';
import { registerSeries } from './metadata.mjs';

const { MeasurementReport } = adaptersSR.Cornerstone3D;
const [seriesPath, measurementsPath, outPath] = process.argv.slice(2);
const imageIds = registerSeries(seriesPath);
const byUid = Object.fromEntries(imageIds.map((id) => [id.slice('medviewer:'.length), id]));
const toolState = {};
for (const [tool, list] of Object.entries(JSON.parse(fs.readFileSync(measurementsPath, 'utf8')))) {
  for (const m of list) {
    const imageId = byUid[m.image];
    const plane = metaData.get('imagePlaneModule', imageId);
    toolState[imageId] ||= {};
    toolState[imageId][tool] ||= { data: [] };
    toolState[imageId][tool].data.push({
      metadata: { toolName: tool, referencedImageId: imageId, FrameOfReferenceUID: plane.frameOfReferenceUID },
      data: { handles: { points: m.points }, cachedStats: { [`imageId:${imageId}`]: m.stats }, label: m.label },
    });
  }
}
const log = console.log;
console.log = () => {};
const report = MeasurementReport.generateReport(toolState, metaData, {});
const bytes = dcmjs.data.datasetToDict(report.dataset).write();
fs.writeFileSync(outPath, Buffer.from(bytes));
log(JSON.stringify({ sopClassUID: report.dataset.SOPClassUID }));
