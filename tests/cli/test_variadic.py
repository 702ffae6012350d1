"""FILE... arguments: extra bare words become repeated flags, and nothing else changes."""

from __future__ import annotations

from invoke import Collection, task

from mailfleet.cli.program import expand_variadic


@task(positional=["files"], iterable=["path"])
def parse(c, files=None, path=None, db=None, json=False):
    pass


parse.variadic = "path"


@task
def other(c, name=None):
    pass


NS = Collection(Collection("dmarc", parse), other)


def test_extra_words_become_repeated_flags() -> None:
    argv = ["dmarc.parse", "a.xml", "b.xml", "c.zip", "--json"]
    assert expand_variadic(argv, NS) == ["dmarc.parse", "a.xml", "--path", "b.xml", "--path", "c.zip", "--json"]


def test_flag_values_are_not_taken_for_files() -> None:
    argv = ["dmarc.parse", "--db", "x.db", "a.xml", "b.xml"]
    assert expand_variadic(argv, NS) == ["dmarc.parse", "--db", "x.db", "a.xml", "--path", "b.xml"]


def test_a_following_task_ends_the_list_and_plain_tasks_are_untouched() -> None:
    argv = ["dmarc.parse", "a.xml", "b.xml", "other", "--name", "n"]
    assert expand_variadic(argv, NS) == ["dmarc.parse", "a.xml", "--path", "b.xml", "other", "--name", "n"]


def test_help_after_a_task_becomes_task_help() -> None:
    from mailfleet.cli.program import help_first

    assert help_first(["dmarc.parse", "--help"], NS) == ["--help", "dmarc.parse"]
    assert help_first(["other", "--name", "x"], NS) == ["other", "--name", "x"]
