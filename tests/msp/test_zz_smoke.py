def test_smoke(world):
    assert world.a.msp.slug == "msp-a"
