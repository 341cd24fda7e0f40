"""Data for radz_train: phantom radiographs, reports, report labeler, DICOM writer, synth CLI.

Light on import: import the submodules you need (`radz_train.data.phantom`, ...).
Only numpy is needed for the generator; pydicom is imported lazily by `dicom_out`.
"""

__all__ = ["phantom", "reports", "labeler", "dicom_out", "synth_cli"]
