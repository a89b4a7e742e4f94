"""The synthetic demo catalogue: its fixed world (world), what each listing is (listings), what its photos
look like (render), and writing it all to a catalogue folder (generator)."""
