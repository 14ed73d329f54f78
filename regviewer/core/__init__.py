"""regviewer's core: images, transforms, landmarks, the registration engine,
evaluation, compositing and file formats. It imports no GUI library."""

import SimpleITK as _sitk

# ITK prints warnings (e.g. NIfTI metadata MetaImage cannot store) straight to stderr,
# where they alarm users and bury real messages; errors still raise as exceptions.
_sitk.ProcessObject_SetGlobalWarningDisplay(False)
