/**
 * `vfio doctor`: a preflight of the machine (and one device) for VFIO
 * passthrough. Each check gives PASS, WARN or FAIL with a one-line fix.
 */
export { runDoctor, DOCTOR_CHECK_IDS, type DoctorReport } from './run';
export type { DoctorOptions } from './options';
export type { DetailValue, DoctorStatus, Finding } from './finding';
export { renderDoctorText, doctorDocument, type DoctorDocument, type DoctorStyle } from './render';
export { doctorSchema } from './schema';
export { parseSize } from './size';
export { doctorCommand } from './command';
