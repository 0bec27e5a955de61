// Read a DICOM SEG as OHIF loads one onto its series: @cornerstonejs/adapters'
// Segmentation.generateToolState (labelmap images, one per image of the series).
//   node read_seg.mjs SEG.dcm SERIES.json     (SERIES.json: see metadata.mjs)
// Prints JSON: the segments (number, label, RGB from CIELab as OHIF shows them), whether they
// overlap, and for each labelmap (several when segments overlap) and each image holding any
// segment, the run-length of its pixels: [[value, count], ...] in row-major order.
import { metaData } from '@cornerstonejs/core';
import { adaptersSEG } from '@cornerstonejs/adapters';
import dcmjs from 'dcmjs';
import { readBuffer, registerSeries, uidOf } from './metadata.mjs';

const [segPath, seriesPath] = process.argv.slice(2);
const imageIds = registerSeries(seriesPath);
const log = console.log;
const warnings = [];
console.log = () => {};
console.warn = (...args) => warnings.push(args.map(String).join(' '));
const result = await adaptersSEG.Cornerstone3D.Segmentation.generateToolState(
  imageIds, readBuffer(segPath), metaData, false, 1e-3);

const segments = result.segMetadata.data.filter(Boolean).map((s) => ({
  number: s.SegmentNumber,
  label: s.SegmentLabel,
  rgb: s.RecommendedDisplayCIELabValue
    ? dcmjs.data.Colors.dicomlab2RGB(s.RecommendedDisplayCIELabValue).map((v) => Math.round(v * 255))
    : null,
}));
const labelmaps = result.labelMapImages.map((images) => {
  const slices = {};
  images.forEach((image) => {
    const pixels = image.voxelManager ? image.voxelManager.getScalarData() : image.getPixelData();
    if (!pixels.some((v) => v !== 0)) return;
    const runs = [];
    for (let i = 0; i < pixels.length; i++) {
      if (runs.length && runs[runs.length - 1][0] === pixels[i]) runs[runs.length - 1][1]++;
      else runs.push([pixels[i], 1]);
    }
    slices[uidOf(image.referencedImageId)] = runs;
  });
  return slices;
});
log(JSON.stringify({ segments, overlapping: !!result.overlappingSegments, warnings, labelmaps }));
