// Write a DICOM SEG as OHIF exports one: @cornerstonejs/adapters' generateSegmentation (OHIF's
// "Export DICOM SEG" and "Store"), written out by dcmjs.
//   node write_seg.mjs SERIES.json LABELS.raw SEGMENTS.json OUT.dcm
// SERIES.json: see metadata.mjs. LABELS.raw: the label map, uint8, slice by slice in the series'
// order, each row-major. SEGMENTS.json: [{number, label, rgb: [r, g, b]}, ...].
import fs from 'node:fs';
import dcmjs from 'dcmjs';
import { metaData } from '@cornerstonejs/core';
import { adaptersSEG } from '@cornerstonejs/adapters';
import { registerSeries } from './metadata.mjs';

const [seriesPath, labelsPath, segmentsPath, outPath] = process.argv.slice(2);
const imageIds = registerSeries(seriesPath);
const { rows, columns } = metaData.get('imagePlaneModule', imageIds[0]);
const labels = new Uint8Array(fs.readFileSync(labelsPath));
const size = rows * columns;

const images = imageIds.map((imageId) => ({
  imageId,
  voxelManager: { getScalarData: () => new Int16Array(size) },
}));
const labelmaps2D = imageIds.map((_, k) => {
  const pixelData = new Uint16Array(labels.subarray(k * size, (k + 1) * size));
  return { pixelData, segmentsOnLabelmap: [...new Set(pixelData)], rows, columns };
});
const code = (value, meaning) => ({ CodeValue: value, CodingSchemeDesignator: 'SCT', CodeMeaning: meaning });
const metadata = [undefined];
for (const s of JSON.parse(fs.readFileSync(segmentsPath, 'utf8'))) {
  metadata[s.number] = {
    SegmentNumber: s.number,
    SegmentLabel: s.label,
    SegmentAlgorithmType: 'MANUAL',
    RecommendedDisplayCIELabValue: dcmjs.data.Colors.rgb2DICOMLAB(s.rgb.map((v) => v / 255)),
    SegmentedPropertyCategoryCodeSequence: code('49755003', 'Morphologically Altered Structure'),
    SegmentedPropertyTypeCodeSequence: code('4147007', 'Mass'),
  };
}
const log = console.log;
console.log = () => {};
const result = adaptersSEG.Cornerstone3D.Segmentation.generateSegmentation(
  images, { labelmaps2D, metadata }, metaData, {});
const bytes = dcmjs.data.datasetToDict(result.dataset).write();
fs.writeFileSync(outPath, Buffer.from(bytes));
log(JSON.stringify({ frames: Number(result.dataset.NumberOfFrames) }));
