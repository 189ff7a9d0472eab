"""drgn is a declared dependency on Linux x86_64: there its absence is a failure, so the
drgn half of the provider-comparison tests cannot disappear silently."""

import platform

import pytest

from .conftest import have_drgn


@pytest.mark.skipif(not (platform.system() == "Linux" and platform.machine() == "x86_64"),
                    reason="drgn ships wheels for Linux x86_64 only")
def test_drgn_installed_where_declared():
    assert have_drgn()
