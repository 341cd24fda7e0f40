"""Reading images: DICOM (dicom.py), PNG/JPEG/numpy (images.py), and any input an Engine takes
(inputs.py: paths, bytes, arrays, pydicom datasets -> Decoded pixels + PixelSpec). No C++."""
