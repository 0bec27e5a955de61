// Cornerstone's metadata provider for the images of one series, read from a JSON file that maps
// each image's SOP Instance UID to its modules (instance, imagePlaneModule, generalImageModule,
// imagePixelModule, generalSeriesModule), as OHIF's DICOMweb loader would provide them.
import fs from 'node:fs';
import { metaData } from '@cornerstonejs/core';

const PREFIX = 'medviewer:';

/** Registers the provider; returns the image ids, in the file's order. */
export function registerSeries(path) {
  const series = JSON.parse(fs.readFileSync(path, 'utf8'));
  metaData.addProvider(
    (type, imageId) => (imageId?.startsWith(PREFIX) ? series[imageId.slice(PREFIX.length)]?.[type] : undefined),
    10000);
  return Object.keys(series).map((uid) => PREFIX + uid);
}

/** The SOP Instance UID in an image id of registerSeries, null for none. */
export const uidOf = (imageId) => (imageId?.startsWith(PREFIX) ? imageId.slice(PREFIX.length) : null);

/** A DICOM file's bytes as an ArrayBuffer. */
export function readBuffer(path) {
  const bytes = fs.readFileSync(path);
  return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
}
