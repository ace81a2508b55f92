# the media fetcher (--media-dir): inbound media resolved through the Graph
# API, downloaded with the token, checked against Meta's SHA-256, stored by
# digest and announced in wa:media; a 20 MB document, a wrong checksum, an
# expired URL, a 429, a file over the cap, a redelivery, a worker killed
# mid-download; against the fake Graph API serving real bytes
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Digest::SHA qw(sha256 sha256_hex);
use MIME::Base64 qw(encode_base64);
use FakeGraph;
use WaTest;
use WaBody qw(messages_body text_message);

my $t = WaTest->new;
$t->start_redis;
$t->start_nginx;
my $g = FakeGraph->new(dir => $t->dir);
my $graph = $g->start;
$t->write_file('token', "EAAtoken-media\n", 0600);
my $store = $t->dir . '/store';
my @worker = ('token-file' => $t->dir . '/token', 'graph-url' => $graph,
              'media-dir' => $store, 'retry-base-ms' => 50,
              'media-attempts' => 4, 'media-max-bytes' => 21 * 1024 * 1024,
              'claim-idle-ms' => 1000);
my $PN = '106540352242922';

# the worker refuses a media directory without a token
my $out = `$t->{worker_bin} --media-dir $store 2>&1`;
isnt $? >> 8, 0, '--media-dir without --token-file: refused';
like $out, qr/--media-dir needs --token-file/, '... saying why';

$t->start_worker(@worker);
my $group = sub {
    my $g = $t->redis('XINFO', 'GROUPS', 'wa:messages');
    ref $g eq 'ARRAY'
        ? { map { my $h = ref $_ eq 'HASH' ? $_ : { @$_ }; ($h->{name} => $h) }
            @$g }
        : {};
};
ok $t->wait_for(sub { $group->()->{'wa-relayd:media'} }),
    'the fetcher reads wa:messages in a group of its own';

# a media message as Meta sends it: the webhook's sha256 is base64
sub media_message {
    my ($id, $type, $bytes, %o) = @_;
    my $obj = { id => $id, mime_type => $o{mime} // 'image/jpeg',
                sha256 => encode_base64(sha256($bytes), '') };
    $obj->{filename} = $o{filename} if $o{filename};
    my $m = text_message("wamid.media.$id", undef, type => $type);
    $m->{$type} = $obj;
    my $r = $t->post(messages_body(messages => [ $m ]));
    is $r->{status}, 200, "webhook with $type $id: 200";
    return "wamid.media.$id";
}

sub media_entry {
    my ($msg) = @_;
    (grep { $_->{msg_id} eq $msg } $t->stream_events('wa:media'))[0];
}
sub dead_entry {
    my ($msg) = @_;
    (grep { ($_->{msg_id} // '') eq $msg } $t->stream_events('wa:dead'))[0];
}
sub slurp {
    open my $fh, '<:raw', $_[0] or return undef;
    local $/;
    return scalar <$fh>;
}
sub requests_for {
    my ($id) = @_;
    my @r = grep { $_->{path} =~ m{/\Q$id\E(?:\?|$)} } $g->requests;
    return (scalar(grep { $_->{path} =~ m{^/v} } @r),
            scalar(grep { $_->{path} =~ m{^/media-file/} } @r));
}

# --- an image: resolved, downloaded with the token, stored by digest ------
my $jpeg = join '', map { chr(($_ * 7) % 256) } 0 .. 40_000;
$g->media('M1', $jpeg, mime => 'image/jpeg');
my $msg = media_message('M1', 'image', $jpeg);
ok $t->wait_for(sub { media_entry($msg) }, 10), 'the image is in wa:media';
my $e = media_entry($msg);
my $hex = sha256_hex($jpeg);
is $e->{sha256}, $hex, 'with its SHA-256';
is $e->{size}, length $jpeg, 'its size';
is $e->{mime_type}, 'image/jpeg', 'its MIME type';
is $e->{media_id}, 'M1', 'its media id';
is $e->{phone_number_id}, $PN, 'the business number';
is $e->{event_id}, $msg, "the message's event_id";
is $e->{v}, '1', 'the format version';
is $e->{path}, "$store/" . substr($hex, 0, 2) . "/$hex",
    'stored under its digest';
ok slurp($e->{path}) eq $jpeg, 'the file holds the bytes Meta served';
my ($r) = grep { $_->{path} =~ m{^/v21.0/M1\?} } $g->requests;
like $r->{path}, qr/phone_number_id=$PN/, 'resolved for the business number';
my ($f) = grep { $_->{path} =~ m{^/media-file/M1} } $g->requests;
is $f->{auth}, 'Bearer EAAtoken-media', 'downloaded with the token';
is $t->redis('HGET', 'wa:media:M1', 'path'), $e->{path},
    'wa:media:<media id> says where it is';
cmp_ok $t->redis('TTL', 'wa:media:M1'), '>', 29 * 86400,
    '... for as long as Meta keeps media';

# --- a 20 MB document ----------------------------------------------------
my $doc = join '', map { pack('N', $_ * 2654435761 % 4294967296) }
    0 .. 20 * 1024 * 1024 / 4 - 1;
$g->media('M2', $doc, mime => 'application/pdf');
$msg = media_message('M2', 'document', $doc, mime => 'application/pdf',
                     filename => 'big.pdf');
ok $t->wait_for(sub { media_entry($msg) }, 30), 'a 20 MB document: stored';
$e = media_entry($msg);
is $e->{size}, 20 * 1024 * 1024, '... all of it';
is $e->{sha256}, sha256_hex($doc), '... and checked';
ok -s $e->{path} == 20 * 1024 * 1024, '... on disk';

# --- a wrong checksum: not stored, in wa:dead with the reason ------------
my $png = "\x89PNG" . ('x' x 5000);
$g->media('M3', $png, sha256 => sha256_hex('something else'));
$msg = media_message('M3', 'image', $png);
ok $t->wait_for(sub { dead_entry($msg) }, 10), 'a wrong checksum: in wa:dead';
$e = dead_entry($msg);
like $e->{reason}, qr/sha256 mismatch/, '... saying so';
is $e->{media_id}, 'M3', '... with the media id';
ok !media_entry($msg), '... not in wa:media';
ok !-e "$store/" . substr(sha256_hex($png), 0, 2) . '/' . sha256_hex($png),
    '... not stored';

# --- an expired URL: 404, resolved again, fetched ------------------------
my $ogg = 'OggS' . ('v' x 3000);
$g->media('M4', $ogg, mime => 'audio/ogg');
$g->rules([ { path => '^/media-file/M4', http => 404, times => 1 } ]);
$msg = media_message('M4', 'audio', $ogg, mime => 'audio/ogg');
ok $t->wait_for(sub { media_entry($msg) }, 10),
    'an expired URL (404): fetched with a fresh one';
my ($resolves, $downloads) = requests_for('M4');
is "$resolves $downloads", '2 2', '... two resolves, two downloads';

# --- a 429 from the Graph API: retried after a backoff --------------------
my $mp4 = 'ftyp' . ('m' x 7000);
$g->media('M5', $mp4, mime => 'video/mp4');
$g->rules([ { path => '^/v21.0/M5', http => 429, code => 80007,
              times => 2 } ]);
$msg = media_message('M5', 'video', $mp4, mime => 'video/mp4');
ok $t->wait_for(sub { media_entry($msg) }, 10), 'a 429: fetched on retry';
($resolves) = requests_for('M5');
is $resolves, 3, '... on the third resolve';

# --- a file over --media-max-bytes: never downloaded --------------------
my $huge = 'h' x (22 * 1024 * 1024);
$g->media('M6', $huge);
$msg = media_message('M6', 'document', $huge, mime => 'video/mp4');
ok $t->wait_for(sub { dead_entry($msg) }, 10), 'over the cap: in wa:dead';
like dead_entry($msg)->{reason}, qr/--media-max-bytes/, '... saying so';
(undef, $downloads) = requests_for('M6');
is $downloads, 0, '... not downloaded';

# ... nor when Meta leaves the size out: cut short at the cap
$g->media('M7', $huge, size => 0);
$msg = media_message('M7', 'document', $huge);
ok $t->wait_for(sub { dead_entry($msg) }, 20),
    'no size given, over the cap: cut short, in wa:dead';
is scalar(grep { /^\d/ } glob("$store/tmp/*")), 0, 'no temp file left';

# --- a text message is none of its business ------------------------------
$t->post(messages_body(messages => [ text_message('wamid.text.1', 'hi') ]));

# --- a redelivery after the dedupe window: not fetched twice -------------
my ($first) = grep { $_->{msg_id} eq 'wamid.media.M1' }
    $t->stream_events('wa:messages');
my @fields = map { ($_, $first->{$_}) } grep { $_ ne 'v' } sort keys %$first;
$t->redis('XADD', 'wa:messages', '*', 'v', 1, @fields);
ok $t->wait_for(sub {
    my $gr = $group->()->{'wa-relayd:media'};
    $gr && $gr->{pending} == 0 && $gr->{lag} == 0
}, 10), 'every entry of wa:messages handled and acknowledged';
my ($res1, $dl1) = requests_for('M1');
is "$res1 $dl1", '1 1', 'a redelivered media message: not fetched again';
is scalar(grep { $_->{media_id} eq 'M1' } $t->stream_events('wa:media')), 1,
    '... nor announced again';

# --- killed mid-download: the entry stays pending, fetched after ---------
my $slow = 'S' x 300_000;
$g->media('M8', $slow);
# answered far later than the case lasts: the kill comes while it waits
$g->rules([ { path => '^/media-file/M8', delay_ms => 60000, times => 1 } ]);
$msg = media_message('M8', 'sticker', $slow, mime => 'image/webp');
ok $t->wait_for(sub { (requests_for('M8'))[1] == 1 }, 10),
    'a slow download under way';
kill 'KILL', $t->{pids}{'worker-w1'};
waitpid $t->{pids}{'worker-w1'}, 0;
delete $t->{pids}{'worker-w1'};
is $group->()->{'wa-relayd:media'}{pending}, 1,
    'the worker killed mid-download: its entry is pending';
ok !media_entry($msg), '... not announced';
$t->start_worker(@worker, consumer => 'w2');
ok $t->wait_for(sub { media_entry($msg) }, 15),
    'another worker takes it over and fetches it';
is scalar(grep { $_->{msg_id} eq $msg } $t->stream_events('wa:media')), 1,
    '... once';
ok $t->wait_for(sub { $group->()->{'wa-relayd:media'}{pending} == 0 }, 30),
    'nothing left pending';

# the worker's counters, and what it logged
ok $t->wait_for(sub {
    ($t->hash('wa:media:worker:w2')->{fetched} // 0) >= 1 }, 30),
    'counters in wa:media:worker:<consumer>';
like $t->worker_log('w1'), qr/media: wamid.media.M3 \(M3\) given up .*sha256 mismatch/,
    'a burial is logged with its reason';
unlike $t->worker_log('w1') . $t->worker_log('w2'), qr/EAAtoken-media/,
    'the token is never logged';

done_testing;
