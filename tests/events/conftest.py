import pytest

from tests.conftest import make_event


@pytest.fixture
def staff_client(client, staff):
    client.force_login(staff)
    return client


@pytest.fixture
def draft_event(venue):
    return make_event(venue, name="Premiere", rows=1, seats_per_row=1, on_sale=False)
