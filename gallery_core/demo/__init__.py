"""The synthetic demo catalogue: what each listing is (generator) and what its photos look like (render)."""
