from loadtest.modes import best_seats


def test_best_seats_are_front_row_centre_of_the_first_section():
    seats = []
    for index, (section, row, number) in enumerate(
        [(s, r, n) for s in "AB" for r in "AB" for n in range(1, 6)], start=1
    ):
        seats.append(
            {
                "id": index,
                "section": section,
                "row": row,
                "number": number,
                "state": "sold" if index == 3 else "available",
            }
        )
    # Row A of section A is seats 1-5; 3 (the centre) is sold, so 2 and 4 come next.
    assert best_seats(seats, 3) == [2, 4, 1]
