# jobstamps.mk: run slow, idempotent recipe commands (linters, checkers) through jobstamp.
#
# Include it with the path that `jobstamp --make-include` prints, so that make stops with a
# message where jobstamp cannot be found (a plain `include $(shell jobstamp --make-include)`
# would then include nothing, and every recipe that uses jobstamp_run would do nothing):
#
#   JOBSTAMP ?= jobstamp
#   include $(or $(shell $(JOBSTAMP) --make-include),$(error jobstamp not found: install jobstamps or run make JOBSTAMP=/path/to/jobstamp))
#
# Variables (set them before or after the include, on the command line, or per target):
#   JOBSTAMP        the jobstamp command; `jobstamp` from PATH by default.
#   JOBSTAMP_FLAGS  options added to every call, e.g. --use-hashes, --explain or --trace.
#
# Function:
#   $(call jobstamp_run,DEPS,OUTPUTS,COMMAND[,OPTIONS])
#     expands to a recipe line that runs COMMAND through jobstamp, with the files DEPS
#     as --dependencies and the files OUTPUTS as --output-files. Either list may be empty.
#     When the command line, the working directory and those files are as on a stored
#     run, jobstamp replays the stored output and exit status instead of running COMMAND.
#     OPTIONS, if given, are jobstamp options of this line alone, after JOBSTAMP_FLAGS
#     (which `make JOBSTAMP_FLAGS=...` replaces): --trace finds what COMMAND reads by
#     tracing it, so that DEPS may stay empty: `$(call jobstamp_run,,,mypy src,--trace)`.
#
# Quoting: each file name in DEPS and OUTPUTS is quoted for the shell (and one that starts
# with '-' is written ./-name, so jobstamp does not take it for an option); COMMAND and
# OPTIONS go into the recipe as written, so quote them as you would the plain recipe line
# (`--trace-ignore '*.log'`). A comma splits $(call ...) arguments: keep a COMMAND or file
# list that holds commas in a variable and pass the variable. Targets whose recipes use
# jobstamp_run should be .PHONY, so that jobstamp, not make's timestamps, decides whether
# the command runs.

JOBSTAMP ?= jobstamp
JOBSTAMP_FLAGS ?=

# 'name' with each ' in name written as '\'' (the shell's way to quote anything), and ./
# before a name that starts with '-'.
_jobstamps_quote = $(foreach f,$(1),'$(if $(filter -%,$(f)),./)$(subst ','\'',$(f))')

jobstamp_run = $(strip $(JOBSTAMP) $(JOBSTAMP_FLAGS) $(4))$(if $(strip $(1)), --dependencies $(call _jobstamps_quote,$(1)))$(if $(strip $(2)), --output-files $(call _jobstamps_quote,$(2))) -- $(3)

# Function:
#   $(call jobstamp_each,FILES,DEPS,COMMAND[,OPTIONS])
#     expands to a recipe line that checks each file of FILES on its own through
#     `jobstamp --per-file`: COMMAND FILE... runs only over the files whose result is not
#     stored (in a few large batches at once), the others replay their stored messages, in
#     the order of FILES, and the line fails when any file fails. The files DEPS (the
#     checker's configuration, headers) are --dependencies of every file's result: a change
#     to one checks every file again. DEPS may be empty. Names are quoted for the shell as in
#     jobstamp_run; a name in FILES or DEPS that starts with - is passed as ./-name. OPTIONS
#     are as in jobstamp_run: with --trace, what a batch read besides its own files (the
#     configuration the checker found, the headers) becomes a dependency of each file in it.
_jobstamps_quote_path = $(foreach f,$(1),'$(if $(filter -%,$(f)),./)$(subst ','\'',$(f))')

jobstamp_each = $(strip $(JOBSTAMP) $(JOBSTAMP_FLAGS) $(4)) --per-file$(if $(strip $(2)), --dependencies $(call _jobstamps_quote_path,$(2))) -- $(3) -- $(call _jobstamps_quote_path,$(1))
