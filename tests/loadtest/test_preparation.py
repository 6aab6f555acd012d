from loadtest.preparation import sections_for


def test_sections_for_gives_exactly_the_asked_number_of_seats():
    for count in (1, 7, 25, 60, 5_001, 50_000):
        specs = sections_for(count)
        assert sum(s.rows * s.seats_per_row for s in specs) == count
        assert all(s.rows <= 200 and s.seats_per_row <= 500 for s in specs)
