from melscribe_torch.data import descriptor_set_text, parse_descriptor_list


def test_python_list_format():
    assert parse_descriptor_list("['low quality', 'sad', 'ballad']") == ["low quality", "sad", "ballad"]


def test_numpy_list_format_with_line_breaks():
    raw = "['female singer' 'opera singer'\n 'rhythm section']"
    assert parse_descriptor_list(raw) == ["female singer", "opera singer", "rhythm section"]


def test_plain_comma_separated_string_passes_through():
    assert parse_descriptor_list("steeldrum, joyful, amateur recording") == ["steeldrum", "joyful", "amateur recording"]


def test_empty_list_gives_no_descriptors():
    assert parse_descriptor_list("[]") == []


def test_descriptor_set_text_joins_with_comma_space():
    assert descriptor_set_text(["a", "b c"]) == "a, b c"
