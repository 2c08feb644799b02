# openaikey admin-key rotate against the fake Admin API: a rotation swaps
# the key file, reloads and then deletes the old key; a failure at each
# step leaves the old key in the file and working, and no key behind.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use lib 't/lib';
use OkeyTest;
use File::Temp qw(tempdir);
use HTTP::Request ();
use JSON::PP ();
use LWP::UserAgent ();
use POSIX qw(WNOHANG);
use Time::HiRes ();

# The command, not the module, is under test: once per suite run.
my $mpm = $ENV{OKEY_MPM} // 'event';
plan skip_all => "the rotation is tested under the event MPM (this is $mpm)" if $mpm ne 'event';
plan tests => 149;

my $JSON = JSON::PP->new->utf8->canonical;
my $T = 'rotate';
my $API = main_url("/openai-$T/v1");
my $CLI = Apache::Test::vars('serverroot') . '/../openaikey';
my $ua = LWP::UserAgent->new(timeout => 30);
my $dir;             # the key file's directory, new for each case
my %values_seen;     # every Admin key value the fake made or held
my $printed = '';    # everything every rotation printed
my $runs = 0;
our $ignore_chld;    # start the next runs with SIGCHLD ignored, as some parents leave it

sub random_value { return 'sk-admin-' . join('', map { ('a' .. 'z', 0 .. 9)[rand 36] } 1 .. 40) }

# A fresh organisation whose one Admin key is in a fresh key file (0640).
sub fresh {
    admin_keys() if $dir;   # the last case's keys, before they are reset away
    my $old = random_value();
    reset_fake({ tenants => { $T => { admin_key => $old } } });
    $dir = tempdir(CLEANUP => 1);
    chmod 0750, $dir;
    write_file("$dir/admin-key", "$old\n", 0640);
    write_file("$dir/reload-exit", "", 0600);
    # The reload records what the file held then, whether the old key still
    # worked, its environment and open files; it exits with the first line
    # of reload-exit, which it takes away (0 when there is none).
    write_file("$dir/reload.sh", <<"SH", 0700);
cp '$dir/admin-key' '$dir/seen-key'
env > '$dir/seen-env'
for fd in /proc/\$\$/fd/*; do readlink "\$fd"; done > '$dir/seen-fds'
curl --noproxy '*' -s -o /dev/null -w '%{http_code}' -H \@'$dir/old-auth' '$API/organization/admin_api_keys' > '$dir/seen-old-status'
code=\$(head -n 1 '$dir/reload-exit')
sed -i 1d '$dir/reload-exit'
[ -x '$dir/on-reload' ] && '$dir/on-reload'
exit \${code:-0}
SH
    write_file("$dir/old-auth", "Authorization: Bearer $old\n", 0600);
    $values_seen{$old} = 1;
    return $old;
}

sub write_file {
    my ($path, $text, $mode) = @_;
    open my $fh, '>', $path or die "$path: $!";
    print $fh $text;
    close $fh;
    chmod $mode, $path;
}

sub read_file {
    my ($path) = @_;
    open my $fh, '<', $path or return undef;
    local $/;
    return scalar <$fh>;
}

sub state_of { return fake_state()->{tenants}{$T} }
sub counter { return state_of()->{counters}{ $_[0] } // 0 }
# The organisation's live Admin keys: its first one until the fake made
# the list. Every value there ever was, deleted keys' too, is remembered.
sub admin_keys {
    my $org = state_of();
    my @keys = @{ $org->{admin_keys} || [{ id => 'key_admin_0', value => $org->{admin_key} }] };
    $values_seen{ $_->{value} } = 1 for @keys;
    return grep { !$_->{deleted_at} } @keys;
}

# The status the fake answers a list of Admin keys with $key.
sub works {
    my ($key) = @_;
    my $res = $ua->request(HTTP::Request->new(GET => "$API/organization/admin_api_keys",
                                              ['Authorization' => "Bearer $key"]));
    return $res->code == 200;
}

sub fault { add_fault(tenant => $T, @_) }

# Starts openaikey admin-key @args, its output into files of its own.
sub start_rotate {
    my (@args) = @_;
    my $run = { out => "$dir/stdout." . ++$runs, err => "$dir/stderr.$runs" };
    $run->{pid} = fork // die "fork: $!";
    if (!$run->{pid}) {
        open STDOUT, '>', $run->{out} or die;
        open STDERR, '>', $run->{err} or die;
        delete $ENV{OPENAI_API_BASE};
        $SIG{CHLD} = 'IGNORE' if $ignore_chld;
        exec $CLI, 'admin-key', @args or die "exec: $!";
    }
    return $run;
}

# Waits (at most 120 s) for a run to end: its exit status, stdout, stderr.
sub finish {
    my ($run) = @_;
    my $deadline = time + 120;
    my $status;
    while (!waitpid($run->{pid}, WNOHANG)) {
        if (time > $deadline) { kill 'KILL', $run->{pid}; waitpid($run->{pid}, 0); $status = -1; last }
        Time::HiRes::sleep(0.05);
    }
    $status //= $? >> 8;
    my ($out, $err) = map { read_file($_) // '' } @$run{qw(out err)};
    unlink @$run{qw(out err)};
    $printed .= $out . $err;
    return wantarray ? ($status, $out, $err) : $status;
}

# Runs a rotation of the key file with @extra: exit status, stdout, stderr.
sub rotate {
    my (@extra) = @_;
    return finish(start_rotate('rotate', '--key-file', "$dir/admin-key", '--api-base', $API,
                               '--reload', "sh $dir/reload.sh", @extra));
}

# Waits (at most 30 s) until $cond holds of the fake's state.
sub wait_for {
    my ($cond) = @_;
    my $deadline = time + 30;
    until ($cond->(state_of())) {
        return 0 if time > $deadline;
        Time::HiRes::sleep(0.05);
    }
    return 1;
}

# What every failed rotation must leave: the old key alone, in the file as
# it was, working.
sub unchanged {
    my ($old, $what) = @_;
    my @keys = admin_keys();
    is(read_file("$dir/admin-key"), "$old\n", "$what: the key file holds the old key as before");
    is((stat "$dir/admin-key")[2] & 07777, 0640, "$what: the key file keeps its mode");
    ok(works($old), "$what: the old key works");
    is_deeply([map { $_->{value} } @keys], [$old], "$what: no other Admin key is left");
    ok(!-e "$dir/seen-key", "$what: the server was not reloaded");
    ok(!-e "$dir/.openaikey-rotate.new", "$what: no temporary file is left");
}

# --- a rotation -------------------------------------------------------------
{
    my $old = fresh();
    # A proxy that is not there: plain http to this machine goes direct.
    my ($status, $out, $err) = do { local $ENV{http_proxy} = 'http://127.0.0.1:9/'; rotate() };
    my @keys = admin_keys();
    my $new = read_file("$dir/admin-key") // '';
    chomp $new;
    is($status, 0, 'a rotation succeeds') or diag $err;
    is($out, '', 'it prints nothing on stdout');
    is(scalar @keys, 1, 'one Admin key is left');
    is($keys[0]{value}, $new, 'the key file holds it, with the old newline');
    like($new, qr/^sk-admin-\w+$/, 'a new Admin key');
    isnt($new, $old, 'not the old one');
    is((stat "$dir/admin-key")[2] & 07777, 0640, 'the key file keeps its mode');
    is((stat "$dir/admin-key")[4], $<, 'and its owner');
    ok(!works($old), 'the old key is deleted');
    ok(works($new), 'the new key works');
    is(read_file("$dir/seen-key"), "$new\n", 'the reload ran with the new key in the file');
    is(read_file("$dir/seen-old-status"), '200', 'the old key still worked during the reload');
    my $env = read_file("$dir/seen-env") // '';
    ok($env ne '' && index($env, $new) < 0 && index($env, $old) < 0,
       'the reload command gets no key in its environment');
    like($env, qr{^PATH=.*:/usr/sbin:}m, 'and a PATH with /usr/sbin, where apachectl is');
    my $fds = read_file("$dir/seen-fds") // '';
    ok($fds ne '' && $fds !~ /^socket:/m, 'and none of the rotation\'s connections') or diag $fds;
    like($keys[0]{name}, qr/^openaikey \S* \d{4}-\d\d-\d\dT\S+ [\w-]{8}$/,
         'the new key is named for the rotation, uniquely');
    ok(!defined $keys[0]{expires_at}, 'without --expires-in it does not expire');
    is(counter('openai.read_admin_key'), 1, 'the new key was proved with one read');
    like($err, qr/rotated: .*admin-key holds the new key key_admin_\d+; the old key key_admin_0 is deleted/,
         'stderr says what was done');
    ok(index($err, $new) < 0 && index($err, $old) < 0, 'no key value on stderr');
    ok(!-e "$dir/.openaikey-rotate.new", 'no temporary file is left');

    # Again, from the new key, with an expiry.
    ($status, $out, $err) = rotate('--expires-in', '30');
    @keys = admin_keys();
    is($status, 0, 'the rotated key rotates again') or diag $err;
    my $newer = read_file("$dir/admin-key");
    chomp $newer;
    ok(!works($new) && works($newer), 'the key before is deleted, the new one works');
    my $expected = time + 30 * 86400;
    ok(abs(($keys[0]{expires_at} // 0) - $expected) < 120, '--expires-in 30 gives it 30 days');
}

# --- what is refused before anything is asked ------------------------------
{
    my $old = fresh();
    my @wrong = (
        [[], qr/needs --key-file/, 'no --key-file'],
        [['--expires-in', '0'], qr/1 to 365/, '--expires-in 0'],
        [['--expires-in', '366'], qr/1 to 365/, '--expires-in 366'],
        [['--expires-in', '7d'], qr/1 to 365/, '--expires-in 7d'],
        [['--api-base', 'http://api.example.com/v1'], qr/--api-base: .*plain http/, 'plain http elsewhere'],
        [['--force'], qr/unknown argument --force/, 'an unknown argument'],
        [[random_value()], qr/unknown argument \[redacted\]\n/, 'a key pasted as an argument, not repeated'],
        [['--reload'], qr/--reload needs a value/, '--reload without a command'],
    );
    for my $case (@wrong) {
        my ($args, $message, $what) = @$case;
        my ($status, $out, $err) = finish(start_rotate('rotate', '--api-base', $API, @$args,
            ($what eq 'no --key-file' ? () : ('--key-file', "$dir/admin-key"))));
        is($status, 2, "$what: a usage error");
        like($err, $message, "$what: says what is wrong");
    }
    is(scalar finish(start_rotate('renew')), 2, 'admin-key takes only rotate');
    is(counter('openai.requests'), 0, 'none of them asked OpenAI anything');

    symlink("$dir/admin-key", "$dir/link");
    my ($status, $out, $err) = finish(start_rotate('rotate', '--key-file', "$dir/link", '--api-base', $API));
    is($status, 1, 'a key file that is a link is refused');
    like($err, qr/link is a symbolic link: give the file it points to; nothing changed/, 'it says so');
    ($status, $out, $err) = finish(start_rotate('rotate', '--key-file', "$dir/missing", '--api-base', $API));
    is($status, 1, 'a missing key file is refused');
    like($err, qr/missing cannot be read: No such file/, 'it says so');
    link("$dir/admin-key", "$dir/hard");
    ($status, $out, $err) = finish(start_rotate('rotate', '--key-file', "$dir/hard", '--api-base', $API));
    is($status, 1, 'a key file with another name (a hard link) is refused');
    like($err, qr/hard has other names \(hard links\)/, 'it says so');
    unlink "$dir/hard";
    chmod 0770, $dir;
    ($status, $out, $err) = finish(start_rotate('rotate', '--key-file', "$dir/admin-key", '--api-base', $API));
    chmod 0750, $dir;
    is($status, 1, 'a key file in a directory that others may write to is refused');
    like($err, qr/admin-key is in a directory that others than root or its owner may write to/, 'it says so');
    write_file("$dir/two", "$old\nsecond line\n", 0600);
    ($status, $out, $err) = finish(start_rotate('rotate', '--key-file', "$dir/two", '--api-base', $API));
    is($status, 1, 'a key file of two lines is refused');
    like($err, qr/two does not hold one key/, 'it says so');
    is(counter('openai.requests'), 0, 'none of them asked OpenAI anything');
    unchanged($old, 'after what was refused');
}

# --- a failure at each step -------------------------------------------------
{
    my $old = fresh();
    write_file("$dir/admin-key", random_value() . "\n", 0640);
    my ($status, $out, $err) = rotate();
    is($status, 1, 'a key the organisation does not accept: fails');
    like($err, qr/answered 401.*not accepted.*nothing changed/, 'it says the key was not accepted');
    is(counter('openai.create_admin_key'), 0, 'nothing was created');
}
{
    my $old = fresh();
    fault(method => 'GET', path => 'admin_api_keys$', status => 500);
    my ($status, $out, $err) = rotate();
    is($status, 1, 'the listing fails: so does the rotation');
    like($err, qr/listing the Admin keys .* answered 500\b.*; nothing changed/, 'it says where');
    is(counter('openai.create_admin_key'), 0, 'nothing was created');
    unchanged($old, 'a failed listing');
}
{
    my $old = fresh();
    my $look_alike = substr($old, 0, 11) . 'x' x 20 . substr($old, -4);
    add_admin_key($look_alike);
    my ($status, $out, $err) = rotate();
    is($status, 1, 'two keys redacted alike: the rotation stops');
    like($err, qr/2 Admin keys look like the key in the file/, 'it says why');
    is(counter('openai.create_admin_key'), 0, 'nothing was created');
    ok(works($old) && works($look_alike), 'both keys still work');
}
{
    my $old = fresh();
    fault(method => 'POST', path => 'admin_api_keys$', status => 500);
    my ($status, $out, $err) = rotate();
    is($status, 1, 'the creation fails: so does the rotation');
    like($err, qr/creating the new Admin key: .*answered 500\b.*; nothing changed/, 'it says where');
    unchanged($old, 'a failed creation');
}
{
    my $old = fresh();
    fault(method => 'POST', path => 'admin_api_keys$', drop => 1, done => 1);
    my ($status, $out, $err) = rotate();
    is($status, 1, 'a creation that made a key but never answered: fails');
    like($err, qr/deleted the new key key_admin_\d+/, 'the key it made is found by name and deleted');
    unchanged($old, 'an unanswered creation');
}
{
    my $old = fresh();
    fault(method => 'GET', path => 'admin_api_keys/key_', status => 500);
    my ($status, $out, $err) = rotate();
    is($status, 1, 'the new key cannot be proved: the rotation fails');
    like($err, qr/reading the new key with itself: .*500.*nothing changed/s, 'it says where');
    like($err, qr/deleted the new key key_admin_\d+/, 'the new key is deleted');
    unchanged($old, 'a failed proof');
}
{
    # The directory becomes read-only while the new key is being proved.
    my $old = fresh();
    fault(method => 'GET', path => 'admin_api_keys/key_', hold => 'rotate_write', delay => 60);
    my $run = start_rotate('rotate', '--key-file', "$dir/admin-key", '--api-base', $API,
                           '--reload', "sh $dir/reload.sh");
    ok(wait_for(sub { ($_[0]{counters}{'openai.create_admin_key'} // 0) == 1 && $_[0]{in_flight} == 1 }),
       'the rotation is proving its new key');
    chmod 0550, $dir;
    release_fault('rotate_write');
    my ($status, $out, $err) = finish($run);
    chmod 0750, $dir;
    is($status, 1, 'the key file cannot be written: the rotation fails');
    like($err, qr/admin-key cannot create a file beside it: Permission denied.*nothing changed/s, 'it says why');
    unchanged($old, 'a failed write');
}
{
    # The new file is in place when the reload fails: the server may have
    # read it. The old file goes back and the server reloads again.
    my $old = fresh();
    write_file("$dir/on-reload", "#!/bin/sh\ncat '$dir/admin-key' >> '$dir/reloads-saw'\n", 0700);
    write_file("$dir/reload-exit", "1\n", 0600);
    my ($status, $out, $err) = rotate();
    my @saw = split /\n/, read_file("$dir/reloads-saw") // '';
    is($status, 1, 'the reload fails: so does the rotation');
    like($err, qr/the reload \(sh .*reload.sh\) failed \(exit status 1\); nothing changed/, 'it says where');
    like($err, qr/put the old key back in .* and reloaded again/, 'and that the old key is back, reloaded');
    is(scalar @saw, 2, 'the server was reloaded twice');
    ok($saw[0] =~ /^sk-admin-/ && $saw[0] ne $old, 'first with the new key in the file');
    is($saw[1], $old, 'then with the old one');
    unlink "$dir/seen-key";
    unchanged($old, 'a failed reload');
}
{
    # Inherited, an ignored SIGCHLD would hide how the reload ended.
    my $old = fresh();
    write_file("$dir/reload-exit", "1\n", 0600);
    my ($status, $out, $err) = do { local $ignore_chld = 1; rotate() };
    is($status, 1, 'with SIGCHLD ignored by its parent, a failed reload still fails the rotation');
    like($err, qr/failed \(exit status 1\)/, 'and its exit status is read');
    unlink "$dir/seen-key";
    unchanged($old, 'a failed reload under an ignored SIGCHLD');
}
{
    my $old = fresh();
    write_file("$dir/reload-exit", "1\n1\n", 0600);
    my ($status, $out, $err) = rotate();
    my @keys = admin_keys();
    is($status, 3, 'the reload fails twice: both keys are kept');
    like($err, qr/put the old key back in .*, but the reload failed again .* delete the new key (key_admin_\d+) by hand/,
         'it says which key to delete once the server has reloaded');
    my ($named) = $err =~ /delete the new key (key_admin_\d+) by hand/;
    is(read_file("$dir/admin-key"), "$old\n", 'the key file holds the old key');
    is(scalar @keys, 2, 'both keys are live');
    ok(works($old) && works($keys[1]{value}), 'and both work');
    is($named, $keys[1]{id}, 'the key named is the new one');
}
{
    # A directory on the path is replaced while the server reloads: httpd
    # reads another file than the one written; the old key must stay.
    my $old = fresh();
    mkdir "$dir/keys", 0750 or die;
    rename "$dir/admin-key", "$dir/keys/admin-key" or die;
    write_file("$dir/other-key", "$old\n", 0640);
    write_file("$dir/on-reload", "#!/bin/sh\nmv '$dir/keys' '$dir/keys.real' && mkdir '$dir/keys' && "
               . "cp '$dir/other-key' '$dir/keys/admin-key'\n", 0700);
    my ($status, $out, $err) = finish(start_rotate('rotate', '--key-file', "$dir/keys/admin-key",
                                                   '--api-base', $API, '--reload', "sh $dir/reload.sh"));
    is($status, 3, 'the key file\'s path names another file after the reload: both keys are kept');
    like($err, qr/keys\/admin-key no longer names the file written/, 'it says so');
    ok(works($old), 'the old key, which the path now names, works');
    is(scalar(admin_keys()), 2, 'and the new one is kept');
}
{
    my $old = fresh();
    fault(method => 'DELETE', path => 'admin_api_keys/key_admin_0', status => 500);
    my ($status, $out, $err) = rotate();
    my $new = read_file("$dir/admin-key") // '';
    chomp $new;
    is($status, 3, 'the old key cannot be deleted: exit status 3');
    like($err, qr/the new key key_admin_\d+ is in .* but the old key key_admin_0 could not be deleted/,
         'it names the key to delete by hand');
    ok($new ne $old && works($new), 'the new key is in the file and works');
    ok(works($old), 'the old key is still there');
}
{
    my $old = fresh();
    fault(method => 'GET', path => 'admin_api_keys$', hold => 'rotate_twice', delay => 60);
    my $first = start_rotate('rotate', '--key-file', "$dir/admin-key", '--api-base', $API,
                             '--reload', "sh $dir/reload.sh");
    ok(wait_for(sub { $_[0]{in_flight} == 1 }), 'a first rotation is listing');
    my ($second, $out, $err) = finish(start_rotate('rotate', '--key-file', "$dir/admin-key", '--api-base', $API,
                                                   '--reload', "sh $dir/reload.sh"));
    is($second, 1, 'a second rotation of the same file at once stops');
    like($err, qr/another rotation is running/, 'it says why');
    release_fault('rotate_twice');
    is(scalar finish($first), 0, 'the first one goes on');
    is(scalar(admin_keys()), 1, 'one key in the end');
}

sub add_admin_key {
    my ($value) = @_;
    my $res = $ua->post(main_url('/fake/admin_key'), Content => $JSON->encode({ tenant => $T, value => $value }));
    die 'admin_key: ' . $res->status_line unless $res->is_success;
}

# No key value the fake ever made or held went to stdout or stderr.
admin_keys();
ok(!grep({ index($printed, $_) >= 0 } keys %values_seen), 'no Admin key value was printed');


