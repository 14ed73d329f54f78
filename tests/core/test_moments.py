"""The 'moments' initializer: image centroids computed as ITK's moments initializer does, faster."""

import numpy as np
import pytest
import SimpleITK as sitk

from regviewer.core.errors import RegistrationFailed
from regviewer.core.imaging.moments import intensity_centroid
from regviewer.core.registration.engine import _initializer, register
from regviewer.core.registration.params import Pipeline, Stage


def _oblique_blob(dim: int, centre_index: tuple, sign: float = 1.0) -> sitk.Image:
    size = [40, 30, 20][:dim]
    blob = sitk.GaussianSource(sitk.sitkFloat32, size, [4.0] * dim, [float(c) for c in centre_index])
    blob = blob + sitk.GaussianSource(sitk.sitkFloat32, size, [2.0] * dim, [float(s) / 3 for s in size], sign * 50.0)
    blob.SetSpacing([0.9, 1.3, 2.5][:dim])
    blob.SetOrigin([-20.0, 7.5, 3.0][:dim])
    turn = sitk.VersorTransform((0.2, -0.1, 0.3), 0.4) if dim == 3 else sitk.Euler2DTransform((0, 0), 0.4)
    blob.SetDirection(turn.GetMatrix())
    return blob


@pytest.mark.parametrize("dim", [2, 3])
@pytest.mark.parametrize("sign", [1.0, -1.0])  # ITK weights by the raw values, negative ones too
def test_the_centroid_is_itks_moments_centre(dim, sign):
    image = _oblique_blob(dim, (25, 12, 8)[:dim], sign)
    itk = sitk.CenteredTransformInitializer(image, image, sitk.AffineTransform(dim),
                                            sitk.CenteredTransformInitializerFilter.MOMENTS)
    np.testing.assert_allclose(intensity_centroid(image), sitk.AffineTransform(itk).GetCenter(), atol=1e-9)


def test_the_moments_initializer_starts_where_itks_did():
    fixed, moving = _oblique_blob(3, (25, 12, 8)), _oblique_blob(3, (18, 16, 10))
    stage = Stage(initializer="moments")
    itk = sitk.AffineTransform(sitk.CenteredTransformInitializer(
        fixed, moving, sitk.AffineTransform(3), sitk.CenteredTransformInitializerFilter.MOMENTS))
    ours = _initializer(stage, fixed, moving)
    np.testing.assert_allclose(ours.GetCenter(), itk.GetCenter(), atol=1e-9)
    np.testing.assert_allclose(ours.GetTranslation(), itk.GetTranslation(), atol=1e-9)


def test_an_empty_image_gets_a_clear_message_not_a_traceback():
    fixed = _oblique_blob(3, (25, 12, 8))
    empty = sitk.Image(fixed.GetSize(), sitk.sitkFloat32)
    empty.CopyInformation(fixed)
    assert intensity_centroid(empty) is None
    with pytest.raises(RegistrationFailed, match="moving image sum to zero"):
        register(fixed, empty, params=Pipeline(stages=(Stage(initializer="moments"),)))
