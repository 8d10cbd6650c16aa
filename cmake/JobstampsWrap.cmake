# JobstampsWrap.cmake: run slow, idempotent commands (linters, checkers) through jobstamp.
#[=======================================================================[.rst:
JobstampsWrap
-------------

Loaded by ``find_package(Jobstamps)``; ``include(JobstampsWrap)`` after it is a no-op
that documents where the command comes from.

.. command:: jobstamps_add_command

  Add a target that runs a command through ``jobstamp`` each time it is built::

    jobstamps_add_command(<name> COMMAND <cmd> [<arg>...]
                          [DEPENDS <file>...] [OUTPUTS <file>...] [USE_HASHES]
                          [TRACE [TRACE_IGNORE <glob>...]]
                          [STAMP_DIRECTORY <dir>] [WORKING_DIRECTORY <dir>]
                          [ALL] [COMMENT <text>])

  or, to check each of many files on its own::

    jobstamps_add_command(<name> PER_FILE SOURCES <file>... COMMAND <cmd> [<arg>...]
                          [DEPENDS <file>...] [USE_HASHES] [JOBS <n>]
                          [TRACE [TRACE_IGNORE <glob>...]]
                          [STAMP_DIRECTORY <dir>] [WORKING_DIRECTORY <dir>]
                          [ALL] [COMMENT <text>])

  When the command line, its working directory and every ``DEPENDS`` file are as
  on a stored run, and every ``OUTPUTS`` file is as that run left it, ``jobstamp``
  replays the stored output and exit status instead of running the command: a no-op
  build shows the linter's warnings again, and a failing check fails it again.

  ``COMMAND <cmd> [<arg>...]``
    The command and its arguments. An executable target name as ``<cmd>`` stands
    for its file, as in ``add_custom_target()``. Generator expressions work.
    Arguments are part of the key: keep build-directory paths out of them, or a
    fresh build directory will not find the stored results.
  ``DEPENDS <file>...``
    Files the result depends on (passed as ``--dependencies``); a changed one
    runs the command again. They are also build dependencies of the target, so
    files that other rules generate are made first.
  ``OUTPUTS <file>...``
    Files the command writes (``--output-files``); a missing or changed one
    runs the command again. They are declared ``BYPRODUCTS`` of the target.
  ``PER_FILE``
    Run ``jobstamp --per-file``: each file of ``SOURCES`` has a result of its own,
    keyed on the command line, that file and the ``DEPENDS`` files. A build checks
    only the files whose result is not stored, in a few large batches run at once
    (``<cmd> [<arg>...] <file>...``), and replays the others in the order given;
    it fails when any file fails. ``OUTPUTS`` cannot be used with it.
  ``SOURCES <file>...``
    The files to check, with ``PER_FILE``. Paths under the working directory are
    passed relative to it (as a checker prints them, and the same in every build
    directory), others as absolute paths. They are build dependencies of the target.
  ``JOBS <n>``
    With ``PER_FILE``, run at most ``<n>`` batches at once (``--jobs``); by default
    as many as there are processors.
  ``USE_HASHES``
    Compare ``DEPENDS`` (and ``SOURCES``) by content: touching a file does not run
    the command.
  ``TRACE``
    Run the command under ``strace`` (``--trace``, Linux) and record what it read,
    looked for and listed: a change to any of it (a header, a configuration file
    found by searching upwards, one created where the command looked for it) runs
    it again, with nothing in ``DEPENDS``. With ``PER_FILE``, what a batch read
    besides its own files becomes a dependency of each file in it. Where tracing
    cannot work the command runs without the cache, after one line saying why.
  ``TRACE_IGNORE <glob>...``
    With ``TRACE``, leave paths matching a glob out of the traced set
    (``--trace-ignore``): one without ``/`` matches any one path component
    (``*.log``), one with ``/`` the whole path, relative to the working directory.
  ``STAMP_DIRECTORY <dir>``
    Where results are stored. By default ``jobstamp`` uses
    ``$JOBSTAMPS_CACHE_DIR`` or the per-user cache, which outlives the build
    directory.
  ``WORKING_DIRECTORY <dir>``
    Where the command runs; ``CMAKE_CURRENT_SOURCE_DIR`` by default, so that the
    key does not depend on the build directory.
  ``ALL``
    Build the target with the default (``all``) target.
  ``COMMENT <text>``
    Shown by the build tool when the target runs.

  Relative paths in ``SOURCES``, ``DEPENDS``, ``OUTPUTS``, ``STAMP_DIRECTORY`` and
  ``WORKING_DIRECTORY`` are taken relative to ``CMAKE_CURRENT_SOURCE_DIR``.
  Generator expressions are passed on unchanged; in ``SOURCES``, ``DEPENDS`` and
  ``OUTPUTS`` they should evaluate to absolute paths (``$<TARGET_FILE:...>`` does),
  since ``jobstamp`` resolves relative ones against the working directory.
#]=======================================================================]

include_guard(GLOBAL)

# Make each path absolute against the current source directory; leave generator
# expressions for the build system to evaluate. With a <relative_to> directory, paths under
# it are made relative to it instead (for PER_FILE SOURCES: a checker prints them as given,
# and the key then holds no build directory), and a name starting with "-" gets "./", or the
# checker would take it for an option.
function(_jobstamps_paths out_var relative_to)
  set(result)
  foreach(path IN LISTS ARGN)
    if(NOT path MATCHES [[\$<]])
      get_filename_component(path "${path}" ABSOLUTE BASE_DIR "${CMAKE_CURRENT_SOURCE_DIR}")
      if(NOT relative_to STREQUAL "" AND NOT relative_to MATCHES [[\$<]])
        file(RELATIVE_PATH relative "${relative_to}" "${path}")
        if(NOT relative STREQUAL "" AND NOT relative MATCHES [[^\.\.(/|$)]])
          string(REGEX REPLACE "^-" "./-" path "${relative}")
        endif()
      endif()
    endif()
    string(REPLACE ";" [[\;]] path "${path}")
    list(APPEND result "${path}")
  endforeach()
  set(${out_var} "${result}" PARENT_SCOPE)
endfunction()

function(jobstamps_add_command)
  set(flags USE_HASHES ALL PER_FILE TRACE)
  set(one_value STAMP_DIRECTORY WORKING_DIRECTORY COMMENT JOBS)
  set(multi_value COMMAND DEPENDS OUTPUTS SOURCES TRACE_IGNORE)
  set(usage "Call it as jobstamps_add_command(<name> COMMAND <cmd> [<arg>...] ...).")

  if(ARGC EQUAL 0 OR "${ARGV0}" IN_LIST flags OR "${ARGV0}" IN_LIST one_value
     OR "${ARGV0}" IN_LIST multi_value)
    message(FATAL_ERROR "jobstamps_add_command: the first argument must be the target name. "
                        "${usage}")
  endif()
  set(name "${ARGV0}")
  set(where "jobstamps_add_command(${name})")
  cmake_parse_arguments(PARSE_ARGV 1 ARG "${flags}" "${one_value}" "${multi_value}")

  if(ARG_UNPARSED_ARGUMENTS)
    list(JOIN ARG_UNPARSED_ARGUMENTS " " unknown)
    list(JOIN flags " " flags_text)
    list(JOIN one_value " " one_value_text)
    list(JOIN multi_value " " multi_value_text)
    message(FATAL_ERROR "${where}: unexpected argument(s) \"${unknown}\". The keywords are "
                        "${multi_value_text} ${one_value_text} ${flags_text}.")
  endif()
  foreach(keyword IN LISTS ARG_KEYWORDS_MISSING_VALUES)
    if(keyword IN_LIST one_value)
      message(FATAL_ERROR "${where}: ${keyword} needs a value. Give it one, or leave it out.")
    endif()
  endforeach()
  if("${ARG_COMMAND}" STREQUAL "")
    message(FATAL_ERROR "${where}: COMMAND is missing or empty. ${usage}")
  endif()
  if(ARG_PER_FILE)
    if("${ARG_SOURCES}" STREQUAL "")
      message(FATAL_ERROR "${where}: PER_FILE needs SOURCES <file>..., the files to check "
                          "one by one. Name them, or leave PER_FILE out.")
    endif()
    if(DEFINED ARG_OUTPUTS OR "OUTPUTS" IN_LIST ARG_KEYWORDS_MISSING_VALUES)
      message(FATAL_ERROR "${where}: OUTPUTS cannot be used with PER_FILE: a file's result "
                          "is its messages and status. Leave OUTPUTS out, or PER_FILE.")
    endif()
    if(DEFINED ARG_JOBS AND NOT ARG_JOBS MATCHES "^[1-9][0-9]*$")
      message(FATAL_ERROR "${where}: JOBS must be a whole number above 0, not \"${ARG_JOBS}\". "
                          "Give the number of batches to run at once, or leave JOBS out.")
    endif()
  else()
    foreach(keyword IN ITEMS SOURCES JOBS)
      if(DEFINED ARG_${keyword} OR keyword IN_LIST ARG_KEYWORDS_MISSING_VALUES)
        message(FATAL_ERROR "${where}: ${keyword} is for checking files one by one. Add "
                            "PER_FILE, or leave ${keyword} out.")
      endif()
    endforeach()
  endif()
  if(NOT ARG_TRACE
     AND (DEFINED ARG_TRACE_IGNORE OR "TRACE_IGNORE" IN_LIST ARG_KEYWORDS_MISSING_VALUES))
    message(FATAL_ERROR "${where}: TRACE_IGNORE names paths left out of a trace. Add TRACE, "
                        "or leave TRACE_IGNORE out.")
  endif()
  if(TARGET "${name}")
    message(FATAL_ERROR "${where}: a target named \"${name}\" already exists. "
                        "Choose another name.")
  endif()
  if(NOT TARGET Jobstamps::jobstamp)
    message(FATAL_ERROR "${where}: the Jobstamps::jobstamp target does not exist. Call "
                        "find_package(Jobstamps CONFIG REQUIRED) before this command.")
  endif()

  # COMMAND_EXPAND_LISTS (below) splits the lists that generator expressions produce, as
  # add_custom_target() does in DEPENDS; a semicolon written inside one argument of COMMAND
  # must stay in it, so escape it once more. List operations would drop the escapes.
  string(REPLACE [[\;]] [[\\;]] command "${ARG_COMMAND}")
  # An executable target as the command stands for its file, as in add_custom_target().
  list(GET ARG_COMMAND 0 program)
  if(TARGET "${program}")
    get_target_property(type "${program}" TYPE)
    if(type STREQUAL "EXECUTABLE")
      string(LENGTH "${program}" length)
      string(SUBSTRING "${command}" ${length} -1 rest)
      set(command "$<TARGET_FILE:${program}>${rest}")
    endif()
  endif()

  _jobstamps_paths(depends "" ${ARG_DEPENDS})
  _jobstamps_paths(outputs "" ${ARG_OUTPUTS})
  set(working_directory "${CMAKE_CURRENT_SOURCE_DIR}")
  if(DEFINED ARG_WORKING_DIRECTORY)
    _jobstamps_paths(working_directory "" "${ARG_WORKING_DIRECTORY}")
  endif()

  set(options)
  set(files)
  set(sources)
  if(ARG_PER_FILE)
    list(APPEND options --per-file)
    # The files follow a second "--"; escaped as COMMAND is, for the same reason.
    _jobstamps_paths(files "${working_directory}" ${ARG_SOURCES})
    string(REPLACE [[\;]] [[\\;]] files "--;${files}")
    _jobstamps_paths(sources "" ${ARG_SOURCES})
  endif()
  if(DEFINED ARG_JOBS)
    list(APPEND options --jobs ${ARG_JOBS})
  endif()
  if(depends)
    list(APPEND options --dependencies ${depends})
  endif()
  if(outputs)
    list(APPEND options --output-files ${outputs})
  endif()
  if(ARG_USE_HASHES)
    list(APPEND options --use-hashes)
  endif()
  if(ARG_TRACE)
    list(APPEND options --trace)
  endif()
  foreach(glob IN LISTS ARG_TRACE_IGNORE)
    list(APPEND options --trace-ignore "${glob}")
  endforeach()
  if(DEFINED ARG_STAMP_DIRECTORY)
    _jobstamps_paths(stamp_directory "" "${ARG_STAMP_DIRECTORY}")
    list(APPEND options --stamp-directory "${stamp_directory}")
  endif()

  # Generator expressions in BYPRODUCTS need CMake 3.20.
  set(byproducts)
  foreach(output IN LISTS outputs)
    if(NOT output MATCHES [[\$<]] OR CMAKE_VERSION VERSION_GREATER_EQUAL 3.20)
      list(APPEND byproducts "${output}")
    endif()
  endforeach()

  set(extra)
  if(ARG_ALL)
    list(APPEND extra ALL)
  endif()
  if(DEFINED ARG_COMMENT)
    string(REPLACE ";" [[\;]] comment "${ARG_COMMENT}")
    list(APPEND extra COMMENT "${comment}")
  endif()

  add_custom_target(
    "${name}" ${extra}
    COMMAND Jobstamps::jobstamp ${options} -- ${command} ${files}
    DEPENDS ${depends} ${sources}
    BYPRODUCTS ${byproducts}
    WORKING_DIRECTORY "${working_directory}"
    COMMAND_EXPAND_LISTS VERBATIM)
endfunction()
