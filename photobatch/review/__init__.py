"""`photobatch review` and `report --html`: the review page, its cards and the contact sheet."""
