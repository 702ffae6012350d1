"""``mailfleet deploy``: gather facts over SSH, plan (pure), show the plan, apply it.

Modules: ``model`` (the data), ``parse_playbook`` (playbooks/*.yaml), ``facts`` and
``parse_facts`` (what is, as (command, parse) pairs), ``merge_env`` (mailcow.conf key by key),
``render_files`` (templates), ``plan`` and ``plan_steps`` (facts + inventory → steps),
``gather`` (read-only I/O), ``apply`` (the only module that changes hosts), ``run`` (the loop
per host and across the fleet), ``render_report`` (table and JSON).
"""
