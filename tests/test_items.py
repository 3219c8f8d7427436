"""get_files, splitters, labellers."""
from pathlib import Path

import pandas as pd
import pytest
import torch

from blocklearn.blocks.files import get_files
from blocklearn.blocks.labellers import ColReader, RegexLabeller, parent_label, using_attr
from blocklearn.blocks.splitters import (ColSplitter, EndSplitter, FuncSplitter, GrandparentSplitter, IndexSplitter,
                              MaskSplitter, RandomSplitter)
from blocklearn.vision.data import get_image_files


def test_get_files_sorted_skips_hidden_and_filters(tmp_path):
    for name in ['b/2.jpg', 'a/1.JPG', 'a/.hidden.jpg', '.cache/3.jpg', 'a/notes.txt', 'c/4.png']:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b'x')
    names = [p.relative_to(tmp_path).as_posix() for p in get_files(tmp_path, extensions=['.jpg', 'png'])]
    assert names == ['a/1.JPG', 'b/2.jpg', 'c/4.png']
    assert [p.name for p in get_files(tmp_path, folders=['b'])] == ['2.jpg']
    assert get_files(tmp_path, recurse=False) == []


def test_get_image_files_on_committed_photos(photos):
    files = get_image_files(photos)
    assert len(files) == 140 and files == sorted(files)


def test_get_files_missing_folder_says_so(tmp_path):
    with pytest.raises(FileNotFoundError, match='not found'):
        get_files(tmp_path / 'nope')


def test_random_splitter_cut_and_seed():
    items = list(range(50))
    train, valid = RandomSplitter(seed=42)(items)
    assert len(valid) == 10 and len(train) == 40 and sorted(train + valid) == items
    assert RandomSplitter(seed=42)(items) == (train, valid)
    assert RandomSplitter(valid_pct=0.25)(list(range(10)))[1].__len__() == 2


def test_random_splitter_does_not_reseed_global_rng():
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    RandomSplitter(seed=42)(list(range(10)))
    assert torch.equal(torch.rand(3), expected)


def test_index_func_mask_end_col_splitters():
    assert IndexSplitter([3, 7, 9])(range(10)) == ([0, 1, 2, 4, 5, 6, 8], [3, 7, 9])
    assert FuncSplitter(lambda o: o % 2 == 1)(range(6)) == ([0, 2, 4], [1, 3, 5])
    assert MaskSplitter([False, True, False])(range(3)) == ([0, 2], [1])
    assert EndSplitter(0.2)(range(10)) == (list(range(8)), [8, 9])
    df = pd.DataFrame({'x': [1, 2, 3], 'is_valid': [False, True, False]})
    assert ColSplitter()(df) == ([0, 2], [1])


def test_grandparent_splitter_and_misspelled_folder(fashion):
    files = get_image_files(fashion)
    train, valid = GrandparentSplitter()(files)
    assert (len(train), len(valid)) == (300, 100)
    with pytest.raises(ValueError, match=r"no items in a 'vaild' folder.*grandparent folders found: train, valid"):
        GrandparentSplitter(valid_name='vaild')(files)


def test_regex_labeller_and_using_attr():
    f = using_attr(RegexLabeller(r'(.+)_\d+.jpg$'), 'name')
    assert f(Path('/x/great_pyrenees_173.jpg')) == 'great_pyrenees'
    assert using_attr(str.upper, 'name')(Path('/a/b.jpg')) == 'B.JPG'
    with pytest.raises(ValueError, match=r"pattern r'\(.\+\)_\\d\+.jpg\$' does not match 'oops.png'"):
        RegexLabeller(r'(.+)_\d+.jpg$')('oops.png')
    assert RegexLabeller(r'(\d+)', match=True)('12ab') == '12'
    with pytest.raises(ValueError):
        RegexLabeller(r'(\d+)', match=True)('ab12')


def test_parent_label_and_col_reader():
    assert parent_label('train/cats/1.jpg') == 'cats'
    df = pd.DataFrame({'fn': ['a', 'b'], 'tags': ['x y', '']})
    assert ColReader('fn', pref='imgs/', suff='.jpg')(df.iloc[0]) == 'imgs/a.jpg'
    assert ColReader('tags', label_delim=' ')(df.iloc[0]) == ['x', 'y']
    assert ColReader('tags', label_delim=' ')(df.iloc[1]) == []
    assert ColReader(0)(df.iloc[1]) == 'b'


def test_get_files_lists_each_file_once_through_a_symlink_loop(tmp_path, write_image):
    for split, label in (('train', 'cat'), ('train', 'dog'), ('valid', 'cat')):
        write_image(tmp_path / split / label / f'{split}_{label}.jpg')
    (tmp_path / 'train' / 'cat' / 'up').symlink_to(tmp_path)  # a loop: train/cat/up/train/cat/up/...
    (tmp_path / 'train' / 'all_dogs').symlink_to(tmp_path / 'train' / 'dog')  # a link elsewhere is still followed
    found = get_image_files(tmp_path)
    assert sorted(p.name for p in found) == ['train_cat.jpg', 'train_dog.jpg', 'valid_cat.jpg']
    assert [p.relative_to(tmp_path).as_posix() for p in found] == [
        'train/cat/train_cat.jpg', 'train/dog/train_dog.jpg', 'valid/cat/valid_cat.jpg']


@pytest.mark.parametrize('pat', [r'^(\w+)+_\d+\.jpg$', r'((a|b)*)*x', r'(?:(\d+)_?)+$', r'(.+)(x?)+'])
def test_regex_labeller_refuses_nested_quantifiers_at_once(pat):
    # each would take longer than the age of the universe on a long name with no match, e.g. 'a' * 40 + '!'
    with pytest.raises(ValueError, match=r'nested quantifier.*possessive|nested quantifier.*atomic'):
        RegexLabeller(pat)


def test_regex_labeller_accepts_patterns_that_cannot_backtrack_badly():
    for pat in (r'(.+)_\d+.jpg$', r'^([a-z]+(?:_[a-z]+)?)_(\d{2})+\.png$', r'(\w+?)-\d*', r'((?:ab){2})+'):
        RegexLabeller(pat)
    assert RegexLabeller(r'((?:ab){2})+x', match=True)('ababx') == 'abab'


def test_regex_labeller_needs_a_group():
    with pytest.raises(ValueError, match=r"no group.*parentheses"):
        RegexLabeller(r'\w+_\d+.jpg$')
